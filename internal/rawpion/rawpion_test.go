package rawpion

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMeasure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bps, err := Measure(ctx, Settings{ReceiveBuffer: 4 << 20, MaxMessageSize: 64 << 10}, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	if bps <= 0 {
		t.Fatalf("throughput %v", bps)
	}
	t.Logf("raw data channel: %.1f MB/s", bps/1e6)
}
