package trackerclient

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/swarmgate/swarmgate/signaling"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitTimeout = 5 * time.Second

func testLogger() *slog.Logger {
	if os.Getenv("SIGNALING_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// newServer starts a real tracker (package signaling's server) on loopback and returns its ws:// URL.
func newServer(t *testing.T) (*signaling.Server, string) {
	t.Helper()
	s, err := signaling.New(signaling.DefaultConfig(), testLogger())
	if err != nil {
		t.Fatalf("signaling.New: %v", err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		ts.Close()
	})
	return s, "ws" + strings.TrimPrefix(ts.URL, "http")
}

func dialClient(t *testing.T, url string, id signaling.ID, h Handlers) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := Dial(ctx, url, id, h, testLogger())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFor polls cond until it holds or the test's wait budget is spent.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// testID returns an ID holding bytes that need care in JSON: NUL, quote, backslash, controls and
// bytes ≥ 0x80, so that the client's binary strings and the server's must agree on each.
func testID(n byte) signaling.ID {
	return signaling.ID{n, 0x00, '"', '\\', 0x7f, 0x80, 0xff, 0x0a, 0x1f, '<', n, 0xe9, 0xc3, 0xa9, 0x01, 0xfe, 'a', 'z', 0x20, n}
}

type answerEvent struct {
	infoHash, from, offerID signaling.ID
	sdp                     string
}

func TestClientRoundTrip(t *testing.T) {
	s, url := newServer(t)
	ctx := context.Background()
	ih, p1, p2 := testID(1), testID(2), testID(3)
	c1 := dialClient(t, url, p1, Handlers{
		Offer: func(ctx context.Context, o signaling.Offer) (string, error) {
			return "answer from c1 to " + o.PeerID.String(), nil
		},
	})
	answers := make(chan answerEvent, 4)
	failures := make(chan string, 4)
	c2 := dialClient(t, url, p2, Handlers{
		Answer:  func(ih, from, oid signaling.ID, sdp string) { answers <- answerEvent{ih, from, oid, sdp} },
		Failure: func(ih signaling.ID, reason string) { failures <- reason },
	})
	if err := c1.Announce(ctx, AnnounceParams{InfoHash: ih, Event: "started", NumWant: 5}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c1 in swarm", func() bool { return slices.Contains(s.Peers(ih), p1) })
	if err := c2.Announce(ctx, AnnounceParams{InfoHash: ih, Event: "started", Left: 10, NumWant: 1,
		Offers: []Offer{{OfferID: testID(10), SDP: "offer from c2"}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-answers:
		if a.infoHash != ih || a.from != p1 || a.offerID != testID(10) || a.sdp != "answer from c1 to "+p2.String() {
			t.Fatalf("answer %+v", a)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no answer")
	}
	if err := c2.Announce(ctx, AnnounceParams{InfoHash: ih, Event: "paused"}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-failures:
		if !strings.Contains(r, "unknown event") {
			t.Fatalf("failure %q", r)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no failure")
	}
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c2.Announce(ctx, AnnounceParams{InfoHash: ih}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Announce after Close: %v", err)
	}
	waitFor(t, "c2's socket gone", func() bool { return s.Stats().Sockets == 1 })
}

// localPeer is a signaling.LocalPeer that answers every offer and reports what it got.
type localPeer struct{ offers chan signaling.Offer }

func (l *localPeer) WantOffer(infoHash, from signaling.ID) bool { return true }

func (l *localPeer) HandleOffer(ctx context.Context, o signaling.Offer) (string, error) {
	l.offers <- o
	return "local answer to " + o.OfferID.String(), nil
}

// The gateway's two directions against a native client: the server's local peer answers the
// client's offer, and the client answers the local peer's.
func TestClientWithLocalPeer(t *testing.T) {
	s, url := newServer(t)
	ctx := context.Background()
	lid, ih, pc := testID(99), testID(1), testID(2)
	local := &localPeer{offers: make(chan signaling.Offer, 4)}
	s.AttachLocal(lid, local)
	s.Join(ih)
	answers := make(chan answerEvent, 4)
	c := dialClient(t, url, pc, Handlers{
		Offer:  func(ctx context.Context, o signaling.Offer) (string, error) { return "client answer: " + o.SDP, nil },
		Answer: func(ih, from, oid signaling.ID, sdp string) { answers <- answerEvent{ih, from, oid, sdp} },
	})
	if err := c.Announce(ctx, AnnounceParams{InfoHash: ih, Event: "started", Left: 1,
		Offers: []Offer{{OfferID: testID(10), SDP: "client offer"}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-local.offers:
		if o.PeerID != pc || o.SDP != "client offer" {
			t.Fatalf("local got %+v", o)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no offer reached the local peer")
	}
	select {
	case a := <-answers:
		if a.from != lid || a.offerID != testID(10) || a.sdp != "local answer to "+testID(10).String() {
			t.Fatalf("answer %+v", a)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no answer from local peer")
	}
	sdp, err := s.SendOffer(ctx, ih, pc, "gateway offer")
	if err != nil || sdp != "client answer: gateway offer" {
		t.Fatalf("SendOffer = %q, %v", sdp, err)
	}
}

func TestClientClosedByServer(t *testing.T) {
	s, url := newServer(t)
	c := dialClient(t, url, testID(1), Handlers{})
	_ = s.Close()
	waitFor(t, "client to notice", func() bool {
		return errors.Is(c.Announce(context.Background(), AnnounceParams{InfoHash: testID(2)}), ErrClosed)
	})
}

// The binary-string form of an ID reads back as the same ID, and a string of another length or
// with a character above U+00FF is refused.
func TestBinaryString(t *testing.T) {
	for _, id := range []signaling.ID{{}, testID(7), {0: 0xff, 19: 0x80}} {
		if got, err := parseBinaryString(binaryString(id)); err != nil || got != id {
			t.Errorf("%v: read back %v, %v", id, got, err)
		}
	}
	for _, s := range []string{"", strings.Repeat("a", 19), strings.Repeat("a", 21), strings.Repeat("\u0100", 20), strings.Repeat("\xff", 20)} {
		if id, err := parseBinaryString(s); err == nil {
			t.Errorf("parseBinaryString(%q) = %v, want an error", s, id)
		}
	}
}
