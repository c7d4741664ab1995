package signaling

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

type answerEvent struct {
	infoHash, from, offerID ID
	sdp                     string
}

func dialClient(t *testing.T, url string, id ID, h ClientHandlers) *Client {
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

func TestClientRoundTrip(t *testing.T) {
	s, url := newTestServer(t, testConfig())
	ctx := context.Background()
	ih, p1, p2 := testID(1), testID(2), testID(3)
	c1 := dialClient(t, url, p1, ClientHandlers{
		Offer: func(ctx context.Context, o Offer) (string, error) {
			return "answer from c1 to " + o.PeerID.String(), nil
		},
	})
	answers := make(chan answerEvent, 4)
	failures := make(chan string, 4)
	c2 := dialClient(t, url, p2, ClientHandlers{
		Answer:  func(ih, from, oid ID, sdp string) { answers <- answerEvent{ih, from, oid, sdp} },
		Failure: func(ih ID, reason string) { failures <- reason },
	})
	if err := c1.Announce(ctx, AnnounceParams{InfoHash: ih, Event: "started", NumWant: 5}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c1 in swarm", func() bool { return containsID(s.Peers(ih), p1) })
	if err := c2.Announce(ctx, AnnounceParams{InfoHash: ih, Event: "started", Left: 10, NumWant: 1,
		Offers: []ClientOffer{{OfferID: testID(10), SDP: "offer from c2"}}}); err != nil {
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

// The gateway's two directions against a native client: the local peer
// answers the client's offer, and the client answers the local peer's.
func TestClientWithLocalPeer(t *testing.T) {
	s, url := newTestServer(t, testConfig())
	ctx := context.Background()
	lid, ih, pc := testID(99), testID(1), testID(2)
	f := newFakeLocal()
	s.AttachLocal(lid, f)
	s.Join(ih)
	answers := make(chan answerEvent, 4)
	c := dialClient(t, url, pc, ClientHandlers{
		Offer:  func(ctx context.Context, o Offer) (string, error) { return "client answer: " + o.SDP, nil },
		Answer: func(ih, from, oid ID, sdp string) { answers <- answerEvent{ih, from, oid, sdp} },
	})
	if err := c.Announce(ctx, AnnounceParams{InfoHash: ih, Event: "started", Left: 1,
		Offers: []ClientOffer{{OfferID: testID(10), SDP: "client offer"}}}); err != nil {
		t.Fatal(err)
	}
	if o := f.nextOffer(t); o.PeerID != pc || o.SDP != "client offer" {
		t.Fatalf("local got %+v", o)
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
	s, url := newTestServer(t, testConfig())
	c := dialClient(t, url, testID(1), ClientHandlers{})
	_ = s.Close()
	waitFor(t, "client to notice", func() bool {
		return errors.Is(c.Announce(context.Background(), AnnounceParams{InfoHash: testID(2)}), ErrClosed)
	})
}

func TestSlowSocketClosed(t *testing.T) {
	cfg := testConfig()
	cfg.SendQueue = 2
	cfg.PingInterval = time.Minute // only the full queue may close it
	s, url := newTestServer(t, cfg)
	ih := testID(1)
	// A peer that never reads, with a small receive buffer so TCP cannot hide it.
	slow := dialWS(t, url, func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	})
	defer slow.Close()
	b, _ := jsonAnnounce(ih, testID(2), 0)
	if err := slow.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	a := dialRaw(t, url)
	a.announce(testID(3), testID(4), nil) // a warm-up; slow has surely been registered by now
	waitFor(t, "slow peer announced", func() bool { return len(s.Peers(ih)) == 1 })
	big := strings.Repeat("x", 60<<10)
	for i := 0; s.Stats().Sockets == 2; i++ {
		if i == 2000 {
			t.Fatal("slow socket never dropped")
		}
		a.send(announceMsg(ih, testID(5), msg{"offers": []msg{{"offer_id": bin(testID(byte(i))), "offer": msg{"type": "offer", "sdp": big}}}}))
		a.next()
	}
	waitFor(t, "slow peer gone", func() bool { return len(s.Peers(ih)) == 1 })
	a.announce(ih, testID(5), nil) // the sender was never blocked and still works
}

// jsonAnnounce is a pre-encoded announce for raw writers.
func jsonAnnounce(ih, pid ID, offers int) ([]byte, error) {
	var ol []clientOfferWire
	for i := range offers {
		ol = append(ol, clientOfferWire{OfferID: randomID().binary(), Offer: sdpMsg{Type: "offer", SDP: fmt.Sprintf("v=0 bench %d", i)}})
	}
	return mustMarshal(clientAnnounce{Action: "announce", InfoHash: ih.binary(), PeerID: pid.binary(), Left: 1, NumWant: offers, Offers: ol}), nil
}

// BenchmarkAnnounce measures announces/s over real loopback sockets: 32
// sockets in 4 swarms, each waiting for its reply before the next announce.
func BenchmarkAnnounce(b *testing.B) {
	for _, offers := range []int{0, 2} {
		b.Run(fmt.Sprintf("offers=%d", offers), func(b *testing.B) {
			cfg := DefaultConfig()
			s, err := New(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			ts := newLoopbackServer(b, s)
			url := "ws" + strings.TrimPrefix(ts, "http")
			const sockets = 32
			var conns []*websocket.Conn
			for i := range sockets {
				ws, resp, err := websocket.DefaultDialer.Dial(url, nil)
				if err != nil {
					b.Fatal(err)
				}
				_ = resp.Body.Close()
				conns = append(conns, ws)
				msg, _ := jsonAnnounce(testID(byte(i%4)), testID(byte(100+i)), 0)
				_ = ws.WriteMessage(websocket.TextMessage, msg)
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/sockets + 1
			for i, ws := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					msg, _ := jsonAnnounce(testID(byte(i%4)), testID(byte(100+i)), offers)
					for range per {
						if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
							return
						}
						for { // skip relayed offers until our reply
							_, data, err := ws.ReadMessage()
							if err != nil {
								return
							}
							if bytes.Contains(data, []byte(`"interval"`)) {
								break
							}
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(per*sockets)/b.Elapsed().Seconds(), "announces/s")
			for _, ws := range conns {
				_ = ws.Close()
			}
			_ = s.Close()
		})
	}
}
