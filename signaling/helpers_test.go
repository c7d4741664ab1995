package signaling

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

const waitTimeout = 5 * time.Second

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// checkGoroutines fails the test if goroutines started during it outlive its cleanups. Call it
// first so its cleanup runs last. (TestMain checks the whole package once more at the end.)
func checkGoroutines(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
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

func testLogger() *slog.Logger {
	if os.Getenv("SIGNALING_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

func testConfig() Config {
	c := DefaultConfig()
	c.PingInterval = 5 * time.Second
	return c
}

// newTestServer starts a Server behind a loopback httptest server and returns its ws:// URL.
func newTestServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	checkGoroutines(t)
	return newTestServerNoLeakCheck(t, cfg)
}

// newTestServerNoLeakCheck is newTestServer for tests that check goroutines once themselves.
func newTestServerNoLeakCheck(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	s, err := New(cfg, testLogger())
	if err != nil {
		t.Fatalf("New: %v", err)
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

// testID returns an ID holding bytes that need care in JSON: NUL, quote,
// backslash, controls and bytes ≥ 0x80.
func testID(n byte) ID {
	return ID{n, 0x00, '"', '\\', 0x7f, 0x80, 0xff, 0x0a, 0x1f, '<', n, 0xe9, 0xc3, 0xa9, 0x01, 0xfe, 'a', 'z', 0x20, n}
}

func bin(id ID) string { return id.binary() }

type msg = map[string]any

// rawPeer is a tracker client written against the JSON wire format directly.
type rawPeer struct {
	t    *testing.T
	ws   *websocket.Conn
	in   chan msg
	done chan struct{} // closed when the socket's reader ends
}

func dialRaw(t *testing.T, url string) *rawPeer { t.Helper(); return dialRawSetup(t, url, nil) }

// dialRawSetup lets setup configure the socket before its reader starts.
func dialRawSetup(t *testing.T, url string, setup func(*websocket.Conn)) *rawPeer {
	t.Helper()
	ws := dialWS(t, url, nil)
	if setup != nil {
		setup(ws)
	}
	p := &rawPeer{t: t, ws: ws, in: make(chan msg, 4096), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var m msg
			if err := json.Unmarshal(data, &m); err != nil {
				t.Errorf("server sent non-JSON %q", data)
				return
			}
			p.in <- m
		}
	}()
	t.Cleanup(func() {
		_ = ws.Close()
		<-p.done
	})
	return p
}

func dialWS(t *testing.T, url string, netDial func(ctx context.Context, network, addr string) (net.Conn, error)) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	d := websocket.Dialer{NetDialContext: netDial}
	ws, resp, err := d.DialContext(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	_ = resp.Body.Close()
	return ws
}

func (p *rawPeer) send(v any) {
	p.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		p.t.Fatal(err)
	}
	p.sendRaw(string(b))
}

func (p *rawPeer) sendRaw(s string) {
	p.t.Helper()
	if err := p.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

func (p *rawPeer) next() msg {
	p.t.Helper()
	select {
	case m := <-p.in:
		return m
	case <-p.done:
		select {
		case m := <-p.in:
			return m
		default:
		}
		p.t.Fatal("socket closed while waiting for a message")
	case <-time.After(waitTimeout):
		p.t.Fatal("timed out waiting for a message")
	}
	return nil
}

// barrier proves that everything the server meant to send this socket so
// far has arrived: the server answers one socket in order, so a scrape's
// reply comes after anything queued before it. It returns the messages that
// came first.
func (p *rawPeer) barrier() []msg {
	p.t.Helper()
	p.send(msg{"action": "scrape", "info_hash": bin(testID(250))})
	var before []msg
	for {
		m := p.next()
		if m["action"] == "scrape" && m["files"] != nil {
			return before
		}
		before = append(before, m)
	}
}

// expectNothing fails if any message is pending for this socket.
func (p *rawPeer) expectNothing() {
	p.t.Helper()
	if got := p.barrier(); len(got) != 0 {
		p.t.Fatalf("unexpected messages: %v", got)
	}
}

func announceMsg(ih, pid ID, extra msg) msg {
	m := msg{"action": "announce", "info_hash": bin(ih), "peer_id": bin(pid),
		"uploaded": 0, "downloaded": 0, "left": 100, "numwant": 5}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func offersList(ids ...ID) []msg {
	var l []msg
	for _, id := range ids {
		l = append(l, msg{"offer_id": bin(id), "offer": msg{"type": "offer", "sdp": "v=0 offer " + id.String()}})
	}
	return l
}

// announce sends an announce and returns its reply, failing on a failure.
func (p *rawPeer) announce(ih, pid ID, extra msg) msg {
	p.t.Helper()
	p.send(announceMsg(ih, pid, extra))
	m := p.next()
	if r, ok := m["failure reason"]; ok {
		p.t.Fatalf("announce failed: %v", r)
	}
	if m["action"] != "announce" || m["info_hash"] != bin(ih) || m["interval"] == nil {
		p.t.Fatalf("unexpected announce reply %v", m)
	}
	return m
}

func (p *rawPeer) answer(ih, self, to, offerID ID, sdp string) {
	p.t.Helper()
	p.send(msg{"action": "announce", "info_hash": bin(ih), "peer_id": bin(self), "to_peer_id": bin(to),
		"offer_id": bin(offerID), "answer": msg{"type": "answer", "sdp": sdp}})
}

// expectFailure reads the next message and checks it is a failure carrying
// action and info_hash and mentioning want.
func (p *rawPeer) expectFailure(action, infoHash, want string) {
	p.t.Helper()
	m := p.next()
	reason, ok := m["failure reason"].(string)
	if !ok {
		p.t.Fatalf("want failure %q, got %v", want, m)
	}
	if m["action"] != action || m["info_hash"] != infoHash {
		p.t.Fatalf("failure %q carries action %v info_hash %q, want %q %q", reason, m["action"], m["info_hash"], action, infoHash)
	}
	if !strings.Contains(reason, want) {
		p.t.Fatalf("failure reason %q does not mention %q", reason, want)
	}
}

func num(v any) int { f, _ := v.(float64); return int(f) }

// newLoopbackServer serves h on 127.0.0.1 until the benchmark or test ends.
func newLoopbackServer(tb testing.TB, h http.Handler) string {
	ts := httptest.NewServer(h)
	tb.Cleanup(ts.Close)
	return ts.URL
}
