package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/transport/v5/test"
	"go.uber.org/goleak"
)

var testLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// TestMain fails the package if any goroutine outlives its tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// guard fails a hung test with a goroutine dump, and fails a test that leaves goroutines behind
// once everything registered after guard has been cleaned up. pion ends some goroutines shortly
// after Close returns, so it waits up to 10 s for them.
func guard(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := goleak.Find(before)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Error(err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	timer := test.TimeOut(timeout + 15*time.Second)
	t.Cleanup(func() { timer.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// loopbackConfig is DefaultConfig kept on the loopback interface.
func loopbackConfig() Config {
	cfg := DefaultConfig()
	cfg.LoopbackOnly = true
	return cfg
}

// testBridge is a loopback Bridge whose OnDialable reports to a channel.
type testBridge struct {
	*Bridge
	dialable chan string
}

func newBridge(t *testing.T, mod func(*Config)) *testBridge {
	t.Helper()
	tb := &testBridge{dialable: make(chan string, 16)}
	cfg := loopbackConfig()
	cfg.OnDialable = func(_ PeerMeta, addr string) { tb.dialable <- addr }
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg, testLog)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tb.Bridge = b
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tb
}

var testMeta = PeerMeta{InfoHash: [20]byte{1, 2, 3}, PeerID: [20]byte{4, 5, 6}}

// signal makes off offer to ans by passing the SDP strings directly; it returns the pending
// offer and the answer.
func signal(t *testing.T, ctx context.Context, off, ans *testBridge, meta PeerMeta) *PendingOffer {
	t.Helper()
	po, err := off.Offer(ctx, meta)
	if err != nil {
		t.Fatalf("Offer: %v", err)
	}
	answer, err := ans.Answer(ctx, meta, po.SDP())
	if err != nil {
		t.Fatalf("Answer: %v", err)
	}
	if err := po.Accept(answer); err != nil {
		t.Fatalf("PendingOffer.Accept: %v", err)
	}
	return po
}

// accept waits for the answerer's next conn.
func accept(t *testing.T, ctx context.Context, b *testBridge) *Conn {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := b.Accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		return r.c.(*Conn)
	case <-ctx.Done():
		_ = b.Close() // unblocks Accept
		<-ch
		t.Fatal("Accept: timed out")
		return nil
	}
}

// dial waits for the offerer's OnDialable and claims the conn.
func dial(t *testing.T, ctx context.Context, b *testBridge) *Conn {
	t.Helper()
	select {
	case addr := <-b.dialable:
		c, err := b.Dial(ctx, addr)
		if err != nil {
			t.Fatalf("Dial(%q): %v", addr, err)
		}
		return c.(*Conn)
	case <-ctx.Done():
		t.Fatal("OnDialable: timed out")
		return nil
	}
}

// connect returns the offerer's and the answerer's conn of one new peer.
func connect(t *testing.T, ctx context.Context, off, ans *testBridge) (oc, ac *Conn) {
	t.Helper()
	signal(t, ctx, off, ans, testMeta)
	ac = accept(t, ctx, ans)
	oc = dial(t, ctx, off)
	t.Cleanup(func() { _ = oc.Close(); _ = ac.Close() })
	return oc, ac
}

// eventually polls cond until it holds or ctx ends.
func eventually(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// readFull reads exactly n bytes with a deadline.
func readFull(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return buf
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
}

func hexdump(b []byte) string {
	var sb strings.Builder
	for _, x := range b {
		fmt.Fprintf(&sb, "%02x ", x)
	}
	return sb.String()
}
