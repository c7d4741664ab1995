package bridge

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/swarmgate/swarmgate/internal/rawpion"
)

// BenchmarkDataChannel is the raw ceiling: one detached channel between two pion peers, 16 KiB
// messages, the bridge's SettingEngine, no Conn.
func BenchmarkDataChannel(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	se, _, err := newSettingEngine(loopbackConfig(), newSlogFactory(testLog)) // no UDPPort: no mux
	if err != nil {
		b.Fatal(err)
	}
	pair, err := rawpion.NewPair(ctx, webrtc.NewAPI(webrtc.WithSettingEngine(se)))
	if err != nil {
		b.Fatal(err)
	}
	defer pair.Close()
	b.SetBytes(rawpion.MessageSize)
	b.ResetTimer()
	if _, err := pair.Transfer(ctx, int64(b.N)*rawpion.MessageSize, rawpion.MessageSize); err != nil {
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
	b.SetBytes(rawpion.MessageSize)
	b.ResetTimer()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, rawpion.MessageSize)
		for range b.N {
			if _, err := w.Write(buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	if _, err := io.CopyN(io.Discard, r, int64(b.N)*rawpion.MessageSize); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
