package bridge

import (
	"errors"
	"testing"
	"time"
)

// The gateway's own offers (gateway/offers.go): Offer, send the SDP through the tracker, then
// Accept the browser's answer, or Close when none comes. Each way out leaves nothing behind.

// OnDialable names the peer the offer was for, and the parked conn carries it.
func TestOfferOnDialableMeta(t *testing.T) {
	ctx := guard(t, 20*time.Second)
	type dialable struct {
		meta PeerMeta
		addr string
	}
	got := make(chan dialable, 1)
	off := newBridge(t, func(c *Config) {
		c.OnDialable = func(meta PeerMeta, addr string) { got <- dialable{meta, addr} }
	})
	ans := newBridge(t, nil)
	meta := PeerMeta{InfoHash: [20]byte{0xab}, PeerID: [20]byte{0xcd}}
	signal(t, ctx, off, ans, meta)
	ac := accept(t, ctx, ans)
	defer ac.Close()
	var d dialable
	select {
	case d = <-got:
	case <-ctx.Done():
		t.Fatal("no OnDialable")
	}
	if d.meta != meta {
		t.Fatalf("OnDialable meta %v, want %v", d.meta, meta)
	}
	c, err := off.Dial(ctx, d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m := c.(*Conn).Meta(); m != meta {
		t.Fatalf("dialed conn's Meta %v, want %v", m, meta)
	}
	if !off.Connected(meta) {
		t.Fatal("Connected false for the offered peer")
	}
}

// An answer that is not one fails with ErrInvalidSDP and closes the PeerConnection; the offer is
// spent.
func TestOfferBadAnswer(t *testing.T) {
	ctx := guard(t, 20*time.Second)
	off := newBridge(t, nil)
	po, err := off.Offer(ctx, testMeta)
	if err != nil {
		t.Fatal(err)
	}
	if err := po.Accept("v=0 not an answer"); !errors.Is(err, ErrInvalidSDP) {
		t.Fatalf("Accept of garbage: %v, want ErrInvalidSDP", err)
	}
	if s := off.Stats(); s.PeerConnections != 0 || off.HasPeer(testMeta) {
		t.Fatalf("after a bad answer: %+v, HasPeer %v", s, off.HasPeer(testMeta))
	}
	if err := po.Accept("v=0 not an answer"); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Accept: %v, want ErrClosed", err)
	}
	if err := po.Close(); err != nil {
		t.Fatalf("Close after a failed Accept: %v", err)
	}
}

// After Accept the conn owns the PeerConnection: a second Accept fails, and Close (which the
// caller may run on every way out) leaves the connection alone.
func TestOfferAcceptOnce(t *testing.T) {
	ctx := guard(t, 20*time.Second)
	off, ans := newBridge(t, nil), newBridge(t, nil)
	po := signal(t, ctx, off, ans, testMeta)
	answer := func() string { // another answer, as a duplicate from the tracker would be
		other := newBridge(t, nil)
		sdp, err := other.Answer(ctx, testMeta, po.SDP())
		if err != nil {
			t.Fatal(err)
		}
		return sdp
	}()
	if err := po.Accept(answer); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Accept: %v, want ErrClosed", err)
	}
	if err := po.Close(); err != nil {
		t.Fatal(err)
	}
	ac := accept(t, ctx, ans)
	oc := dial(t, ctx, off)
	defer oc.Close()
	defer ac.Close()
	if _, err := oc.Write([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	if got := readFull(t, ac, 10); string(got) != "still here" {
		t.Fatalf("got %q", got)
	}
}

// An offer that is already gone cannot be accepted: abandoned by its owner, expired by
// ConnectTimeout, or closed with the Bridge.
func TestOfferAcceptAfterEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, b *testBridge, po *PendingOffer)
	}{
		{"closed", func(t *testing.T, _ *testBridge, po *PendingOffer) { _ = po.Close() }},
		{"connect timeout", func(t *testing.T, b *testBridge, _ *PendingOffer) {
			eventually(t, t.Context(), "the offer to expire", func() bool { return b.Stats().PeerConnections == 0 })
		}},
		{"bridge closed", func(t *testing.T, b *testBridge, _ *PendingOffer) { _ = b.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := guard(t, 20*time.Second)
			off := newBridge(t, func(c *Config) { c.ConnectTimeout = time.Second })
			ans := newBridge(t, nil)
			po, err := off.Offer(ctx, testMeta)
			if err != nil {
				t.Fatal(err)
			}
			answer, err := ans.Answer(ctx, testMeta, po.SDP())
			if err != nil {
				t.Fatal(err)
			}
			tc.end(t, off, po)
			if err := po.Accept(answer); !errors.Is(err, ErrClosed) {
				t.Fatalf("Accept: %v, want ErrClosed", err)
			}
			if err := po.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if s := off.Stats(); s.PeerConnections != 0 || off.HasPeer(testMeta) {
				t.Fatalf("offerer after the end: %+v", s)
			}
			select {
			case addr := <-off.dialable:
				t.Fatalf("OnDialable(%q) for an offer that ended", addr)
			default:
			}
		})
	}
}
