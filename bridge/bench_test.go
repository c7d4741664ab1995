package bridge

import (
	"context"
	"io"
	"testing"
	"time"
)

// BenchmarkDataChannel is the raw ceiling: one detached channel between two pion peers, 16 KiB
// messages, the bridge's SettingEngine, no Conn.
func BenchmarkDataChannel(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pair, err := newRawPair(ctx, loopbackConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer pair.close()
	b.SetBytes(RawMessageSize)
	b.ResetTimer()
	if _, err := pair.transfer(ctx, int64(b.N)*RawMessageSize, RawMessageSize); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkConn is the same transfer through two Bridges' Conns (buffered reads, chunked and
// deadline-bounded writes, wire shim), to show what the wrapping costs.
func BenchmarkConn(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dialable := make(chan string, 1)
	offCfg := loopbackConfig()
	offCfg.OnDialable = func(_ PeerMeta, addr string) { dialable <- addr }
	off, err := New(offCfg, testLog)
	if err != nil {
		b.Fatal(err)
	}
	defer off.Close()
	ans, err := New(loopbackConfig(), testLog)
	if err != nil {
		b.Fatal(err)
	}
	defer ans.Close()
	po, err := off.Offer(ctx, testMeta)
	if err != nil {
		b.Fatal(err)
	}
	answer, err := ans.Answer(ctx, testMeta, po.SDP())
	if err != nil {
		b.Fatal(err)
	}
	if err := po.Accept(answer); err != nil {
		b.Fatal(err)
	}
	r, err := ans.Accept()
	if err != nil {
		b.Fatal(err)
	}
	w, err := off.Dial(ctx, <-dialable)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(RawMessageSize)
	b.ResetTimer()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, RawMessageSize)
		for range b.N {
			if _, err := w.Write(buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	if _, err := io.CopyN(io.Discard, r, int64(b.N)*RawMessageSize); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func TestMeasureRawThroughput(t *testing.T) {
	ctx := guard(t, 30*time.Second)
	bps, err := MeasureRawThroughput(ctx, loopbackConfig(), 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	if bps <= 0 {
		t.Fatalf("throughput %v", bps)
	}
	t.Logf("raw data channel: %.1f MB/s", bps/1e6)
}
