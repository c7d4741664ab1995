package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// dialFrom dials the tracker from another loopback source address (all of 127/8 is on lo), a
// second client IP without leaving the machine.
func dialFrom(src string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return d.DialContext
}

func TestSocketsPerIPLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSocketsPerIP = 2
	s, url := newTestServer(t, cfg)
	a, b := dialRaw(t, url), dialRaw(t, url)
	ih := testID(1)
	a.announce(ih, testID(2), nil)

	// The third socket from 127.0.0.1 is refused before the upgrade, with a JSON reason.
	_, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err == nil || resp == nil {
		t.Fatalf("third socket from one IP: err %v, resp %v", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	var e map[string]string
	if resp.StatusCode != http.StatusTooManyRequests || json.Unmarshal(body, &e) != nil ||
		!strings.Contains(e["error"], "too many connections") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("refusal: status %d, Retry-After %q, body %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// A socket counts against its IP from the upgrade on, and in Stats once its reader runs.
	waitFor(t, "two sockets and one refusal in the stats", func() bool {
		st := s.Stats()
		return st.SocketsRefused == 1 && st.Sockets == 2
	})

	// Everyone else keeps being served: the open sockets, and a client from another IP.
	b.announce(ih, testID(3), nil)
	ws := dialWS(t, url, dialFrom("127.0.0.2"))
	other := &rawPeer{t: t, ws: ws, in: make(chan msg, 16), done: make(chan struct{})}
	go func() {
		defer close(other.done)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var m msg
			_ = json.Unmarshal(data, &m)
			other.in <- m
		}
	}()
	t.Cleanup(func() { _ = ws.Close(); <-other.done })
	if r := other.announce(ih, testID(4), nil); num(r["incomplete"]) != 3 {
		t.Fatalf("announce from the other IP: %v", r)
	}

	// A closed socket gives its slot back.
	_ = a.ws.Close()
	<-a.done
	waitFor(t, "the closed socket to be dropped", func() bool { return s.Stats().Sockets == 2 })
	c := dialRaw(t, url)
	c.announce(ih, testID(5), nil)
}

func TestOfferRateLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxOffersPerAnnounce = 3
	cfg.OffersPerSecond = 0.01 // burst 3 (one full announce), then one offer per 100 s
	s, url := newTestServer(t, cfg)
	ih := testID(1)
	var others []*rawPeer
	for i := range 3 {
		p := dialRaw(t, url)
		p.announce(ih, testID(byte(10+i)), nil)
		others = append(others, p)
	}
	a := dialRaw(t, url)
	a.announce(ih, testID(2), msg{"offers": offersList(testID(40), testID(41), testID(42))})
	a.expectNothing()
	if got := s.Stats().OffersRelayed; got != 3 {
		t.Fatalf("first announce: %d offers relayed, want 3", got)
	}

	// The bucket is empty: the announce is served, its offers are dropped and said so.
	a.send(announceMsg(ih, testID(2), msg{"offers": offersList(testID(43), testID(44))}))
	if r := a.next(); r["action"] != "announce" || r["interval"] == nil {
		t.Fatalf("want the announce reply first, got %v", r)
	}
	a.expectFailure("announce", bin(ih), "too many offers")
	if st := s.Stats(); st.OffersRelayed != 3 || st.OffersDropped != 2 {
		t.Fatalf("stats after the limit: %+v", st)
	}
	// The socket stays open and announces without offers; another socket still sends offers.
	for _, p := range others {
		p.barrier() // the first announce's offers
	}
	a.announce(ih, testID(2), nil)
	a.expectNothing()
	others[0].announce(ih, testID(10), msg{"offers": offersList(testID(45))})
	// The reply goes out before the offers are relayed: wait for the count, not the reply.
	waitFor(t, "the other socket's offer to be relayed", func() bool { return s.Stats().OffersRelayed == 4 })
}

func TestAllowInfoHash(t *testing.T) {
	cfg := testConfig()
	allowed := testID(1)
	cfg.AllowInfoHash = func(ih ID) bool { return ih == allowed }
	s, url := newTestServer(t, cfg)
	a, b := dialRaw(t, url), dialRaw(t, url)
	a.send(announceMsg(testID(9), testID(2), msg{"offers": offersList(testID(40))}))
	a.expectFailure("announce", bin(testID(9)), "not served by this tracker")
	b.announce(allowed, testID(3), nil)
	a.announce(allowed, testID(2), nil) // the same socket, an allowed swarm
	b.expectNothing()
	if st := s.Stats(); st.InfoHashesRefused != 1 || st.OffersRelayed != 0 || st.Swarms != 1 {
		t.Fatalf("stats %+v", st)
	}
	if s.SwarmStats(testID(9)).Peers != 0 {
		t.Fatal("refused swarm has peers")
	}
}

func TestLimitsConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		field string
		mut   func(*Config)
	}{
		{"MaxSocketsPerIP", func(c *Config) { c.MaxSocketsPerIP = -1 }},
		{"OffersPerSecond", func(c *Config) { c.OffersPerSecond = -0.5 }},
	} {
		c := DefaultConfig()
		tc.mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: Validate = %v", tc.field, err)
		}
	}
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

// TestIdleSocketCost checks what keeps the tracker cheap per socket: once its announce is
// answered, a socket holds one goroutine (its reader), no writer and no send queue, while relays
// to it still get through.
func TestIdleSocketCost(t *testing.T) {
	s, url := newTestServer(t, testConfig())
	ih := testID(1)
	before := runtime.NumGoroutine()
	const n = 20
	peers := make([]*rawPeer, n)
	for i := range peers {
		peers[i] = dialRaw(t, url)
		peers[i].announce(ih, testID(byte(10+i)), nil)
	}
	// Each socket here has a client reader too: two goroutines per socket in all.
	waitFor(t, "one server goroutine per idle socket", func() bool { return runtime.NumGoroutine()-before <= 2*n })
	// A reader that wrote its reply itself clears writing just after the client has the reply.
	busy := ""
	idle := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.mu.Lock()
			if c.writing || c.queue != nil {
				busy = fmt.Sprintf("%s: writing %v, %d queued", c.remote, c.writing, len(c.queue))
			}
			c.mu.Unlock()
			if busy != "" {
				return false
			}
		}
		return true
	}
	waitFor(t, "every socket idle: no writer, no queue", func() bool { busy = ""; return idle() })
	if busy != "" {
		t.Errorf("idle socket %s", busy)
	}
	// A relay to an idle socket starts a writer that delivers it.
	peers[0].announce(ih, testID(10), msg{"offers": offersList(testID(99))})
	delivered := false
	waitFor(t, "the offer relayed", func() bool {
		for _, p := range peers[1:] {
			select {
			case m := <-p.in:
				delivered = delivered || m["offer"] != nil
			default:
			}
		}
		return delivered
	})
}
