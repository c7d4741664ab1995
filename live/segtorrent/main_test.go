package segtorrent

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: fetches wait on anacrolix's
// torrents, and the tests' clients run without a DHT, so nothing is known to linger.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
