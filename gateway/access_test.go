package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/gorilla/websocket"

	"github.com/swarmgate/swarmgate/internal/peertest"
)

const testToken = "test-admin-token-0123456789"

func bearer(tok string) map[string]string {
	return map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + tok}
}

func (r *running) post(t testing.TB, hdr map[string]string, v any) response {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if hdr == nil {
		hdr = map[string]string{"Content-Type": "application/json"}
	}
	return r.do(t, http.MethodPost, "/api/torrents", hdr, bytes.NewReader(b))
}

// someInfoHash is a made-up infohash: adding it only waits for metadata that never comes.
func someInfoHash(n byte) string { return strings.Repeat(fmt.Sprintf("%02x", n), 20) }

// watchEndpoints are what viewers use; none of them may need the admin token.
func watchEndpoints(t *testing.T, r *running, ih string) {
	t.Helper()
	for _, tc := range []struct {
		path string
		hdr  map[string]string
		want int
	}{
		{"/api/torrents", nil, http.StatusOK},
		{"/api/torrents/" + ih, nil, http.StatusOK},
		{"/api/torrents/" + ih + "/metainfo", nil, http.StatusOK},
		{"/api/config", nil, http.StatusOK},
		{"/stream/" + ih + "/0", map[string]string{"Range": "bytes=0-99"}, http.StatusPartialContent},
		{"/webseed/" + ih + "/" + demoName, map[string]string{"Range": "bytes=0-99"}, http.StatusPartialContent},
		{"/playlist/" + ih + ".m3u", nil, http.StatusOK},
		{"/playlist/all.m3u", nil, http.StatusOK},
		{"/watch/" + ih + "?file=0", nil, http.StatusOK},
		{"/embed/" + ih + "?file=0", nil, http.StatusOK},
		{"/", nil, http.StatusOK},
	} {
		if res := r.get(t, tc.path, tc.hdr); res.status != tc.want {
			t.Errorf("GET %s without a token: %d, want %d; %.200s", tc.path, res.status, tc.want, res.body)
		}
	}
	tr := dialTracker(t, r, nil)
	tr.announceOK(t, ih)
}

func TestAdminToken(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.Demo = true; c.AdminToken = testToken })
	demo := demoInfoHash(t, r)
	add := map[string]string{"infohash": someInfoHash(1)}
	for _, tc := range []struct {
		name string
		hdr  map[string]string
	}{
		{"no header", nil},
		{"wrong token", bearer("not-the-token-0123456789")},
		{"token prefix", bearer(testToken[:len(testToken)-1])},
		{"other scheme", map[string]string{"Content-Type": "application/json", "Authorization": "Basic " + testToken}},
		{"bare token", map[string]string{"Content-Type": "application/json", "Authorization": testToken}},
	} {
		res := r.post(t, tc.hdr, add)
		wantJSONError(t, "POST, "+tc.name, res, http.StatusUnauthorized)
		if h := res.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
			t.Errorf("POST, %s: WWW-Authenticate %q", tc.name, h)
		}
		res = r.do(t, http.MethodDelete, "/api/torrents/"+demo, tc.hdr, nil)
		wantJSONError(t, "DELETE, "+tc.name, res, http.StatusUnauthorized)
	}
	if res := r.post(t, bearer(testToken), add); res.status != http.StatusCreated {
		t.Fatalf("POST with the token: %d %s", res.status, res.body)
	}
	watchEndpoints(t, r, demo)
	if res := r.do(t, http.MethodDelete, "/api/torrents/"+someInfoHash(1), bearer(testToken), nil); res.status != http.StatusNoContent {
		t.Fatalf("DELETE with the token: %d %s", res.status, res.body)
	}
	m := scrapeLimitRefusals(t, r)
	if m["allow_add"] != 0 {
		t.Errorf("refusals: %v", m)
	}
}

func TestAllowAddModes(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		r := startGateway(t, func(c *Config) { c.Demo = true; c.AdminToken = testToken; c.AllowAdd = "none" })
		for _, hdr := range []map[string]string{nil, bearer(testToken)} {
			res := r.post(t, hdr, map[string]string{"infohash": someInfoHash(2)})
			wantJSONError(t, "POST under allow-add none", res, http.StatusForbidden)
			if !strings.Contains(string(res.body), "allow-add none") {
				t.Errorf("403 does not say why: %s", res.body)
			}
		}
		// The operator's own torrent is still there and watchable.
		watchEndpoints(t, r, demoInfoHash(t, r))
		if m := scrapeLimitRefusals(t, r); m["allow_add"] != 2 {
			t.Errorf("allow_add refusals %v, want 2", m["allow_add"])
		}
	})
	t.Run("any with a token", func(t *testing.T) {
		r := startGateway(t, func(c *Config) { c.AdminToken = testToken; c.AllowAdd = "any" })
		ih := someInfoHash(3)
		if res := r.post(t, nil, map[string]string{"infohash": ih}); res.status != http.StatusCreated {
			t.Fatalf("POST without a token under allow-add any: %d %s", res.status, res.body)
		}
		wantJSONError(t, "DELETE without the token", r.do(t, http.MethodDelete, "/api/torrents/"+ih, nil, nil), http.StatusUnauthorized)
	})
	t.Run("default without a token", func(t *testing.T) {
		r := startGateway(t, nil)
		ih := someInfoHash(4)
		if res := r.post(t, nil, map[string]string{"infohash": ih}); res.status != http.StatusCreated {
			t.Fatalf("POST: %d %s", res.status, res.body)
		}
		if res := r.do(t, http.MethodDelete, "/api/torrents/"+ih, nil, nil); res.status != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", res.status, res.body)
		}
	})
}

func TestInfoHashAllowlist(t *testing.T) {
	allowed, other := someInfoHash(5), someInfoHash(6)
	r := startGateway(t, func(c *Config) { c.Demo = true; c.AllowInfoHashes = []string{strings.ToUpper(allowed)} })
	demo := demoInfoHash(t, r)
	for _, body := range []map[string]string{
		{"infohash": other},
		{"magnet": "magnet:?xt=urn:btih:" + other + "&dn=x"},
	} {
		res := r.post(t, nil, body)
		wantJSONError(t, fmt.Sprintf("POST %v", body), res, http.StatusForbidden)
		if !strings.Contains(string(res.body), "allowlist") {
			t.Errorf("403 does not say why: %s", res.body)
		}
	}
	if res := r.post(t, nil, map[string]string{"infohash": allowed}); res.status != http.StatusCreated {
		t.Fatalf("POST of the allowed infohash: %d %s", res.status, res.body)
	}

	tr := dialTracker(t, r, nil)
	tr.announce(t, other)
	if reason := tr.failure(t, other); !strings.Contains(reason, "not served") {
		t.Errorf("tracker failure for a swarm off the list: %q", reason)
	}
	tr.announceOK(t, allowed) // the same socket, still served
	tr.announceOK(t, demo)    // the operator's own torrent is always served
	m := scrapeLimitRefusals(t, r)
	if m["allow_infohash"] != 2 || m["tracker_infohash"] != 1 {
		t.Errorf("refusals: %v", m)
	}
}

func TestMaxTorrents(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.Demo = true; c.MaxTorrents = 2 })
	demo := demoInfoHash(t, r)
	a, b := someInfoHash(7), someInfoHash(8)
	if res := r.post(t, nil, map[string]string{"infohash": a}); res.status != http.StatusCreated {
		t.Fatalf("POST under the limit: %d %s", res.status, res.body)
	}
	res := r.post(t, nil, map[string]string{"infohash": b})
	wantJSONError(t, "POST over max-torrents", res, http.StatusServiceUnavailable)
	if res.header.Get("Retry-After") == "" || !strings.Contains(string(res.body), "maximum of 2") {
		t.Errorf("503: Retry-After %q, body %s", res.header.Get("Retry-After"), res.body)
	}
	// A torrent already there is not refused, and the others keep working.
	if res := r.post(t, nil, map[string]string{"infohash": a}); res.status != http.StatusOK {
		t.Errorf("re-adding a held torrent at the limit: %d %s", res.status, res.body)
	}
	if res := r.get(t, "/stream/"+demo+"/0", map[string]string{"Range": "bytes=0-9"}); res.status != http.StatusPartialContent {
		t.Errorf("stream at the limit: %d", res.status)
	}
	if res := r.do(t, http.MethodDelete, "/api/torrents/"+a, nil, nil); res.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d", res.status)
	}
	if res := r.post(t, nil, map[string]string{"infohash": b}); res.status != http.StatusCreated {
		t.Errorf("POST after making room: %d %s", res.status, res.body)
	}
	if m := scrapeLimitRefusals(t, r); m["max_torrents"] != 1 {
		t.Errorf("refusals: %v", m)
	}
}

func TestTrackerLimitsThroughGateway(t *testing.T) {
	r := startGateway(t, func(c *Config) {
		c.Demo = true
		c.MaxWSPerIP = 1
		c.TrustedProxies = []string{"127.0.0.1/32"}
		c.MaxSwarmsPerSocket = 1
		c.MaxMessageBytes = 2048
		c.MaxOffersPerSec = 0.01 // one full announce (10 offers), then one per 100 s
	})
	demo := demoInfoHash(t, r)
	xff := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {"198.51.100.9, " + ip}} }
	first := dialTracker(t, r, xff("203.0.113.5"))
	_, resp, err := websocket.DefaultDialer.Dial(trackerURL(r), xff("203.0.113.5"))
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second socket of one client behind the proxy: err %v, resp %v", err, resp)
	}
	var e apiError
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || !strings.Contains(e.Error, "too many connections") {
		t.Errorf("429 body: %+v %v", e, err)
	}
	resp.Body.Close()
	// Another client behind the same proxy, and the first one, are still served.
	second := dialTracker(t, r, xff("203.0.113.6"))
	second.announceOK(t, demo)
	first.announceOK(t, demo)

	// One swarm per socket: a second one gets a failure reason, the first stays announced.
	first.announce(t, someInfoHash(9))
	if reason := first.failure(t, someInfoHash(9)); !strings.Contains(reason, "too many swarms") {
		t.Errorf("second swarm on one socket: %q", reason)
	}
	first.announceOK(t, demo)

	// Offers over the socket's rate: the announce is served, the offers are dropped and said so.
	first.announceOffers(t, demo, 10)
	if r := first.next(t); r["interval"] == nil {
		t.Fatalf("announce with offers: %v", r)
	}
	first.announceOffers(t, demo, 1)
	if r := first.next(t); r["interval"] == nil {
		t.Fatalf("announce over the offer rate: %v", r)
	}
	if reason := first.failure(t, demo); !strings.Contains(reason, "too many offers") {
		t.Errorf("offer over the rate: %q", reason)
	}

	// An oversized message closes its own socket only.
	big := dialTracker(t, r, xff("203.0.113.7"))
	if err := big.ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte(" "), 4096)); err != nil {
		t.Fatal(err)
	}
	_ = big.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := big.ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Errorf("oversized message: read %v, want close 1009", err)
	}
	second.announceOK(t, demo)
	if m := scrapeLimitRefusals(t, r); m["ws_per_ip"] != 1 || m["offers_per_sec"] != 1 {
		t.Errorf("refusals: %v", m)
	}
}

func TestClientIP(t *testing.T) {
	a, err := newAccess(Config{TrustedProxies: []string{"10.0.0.0/8", "192.0.2.1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		remote, xff, want string
	}{
		{"203.0.113.1:5000", "", "203.0.113.1"},
		{"203.0.113.1:5000", "1.2.3.4", "203.0.113.1"}, // not from a trusted proxy: header ignored
		{"10.1.2.3:5000", "", "10.1.2.3"},
		{"10.1.2.3:5000", "1.2.3.4", "1.2.3.4"},
		{"10.1.2.3:5000", "6.6.6.6, 1.2.3.4", "1.2.3.4"},             // the left one is the client's own claim
		{"10.1.2.3:5000", "1.2.3.4, 192.0.2.1, 10.9.9.9", "1.2.3.4"}, // through a chain of trusted proxies
		{"192.0.2.1:5000", "garbage", "192.0.2.1"},
		{"[::ffff:10.1.2.3]:5000", "2001:db8::7", "2001:db8::7"},
	} {
		req := httptest.NewRequest(http.MethodGet, "/announce", nil)
		req.RemoteAddr = tc.remote
		if tc.xff != "" {
			req.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := a.clientIP(req); got != tc.want {
			t.Errorf("remote %s, X-Forwarded-For %q: %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

// Over the per-torrent WebRTC limit the gateway declines offers: a browser that cannot reach it
// gets the whole file from another browser, and the one holding the slot keeps its conn.
func TestWebRTCPeerLimit(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.Demo = true; c.MaxWebRTCPeersPerTorrent = 1 })
	demo := demoInfoHash(t, r)
	e, _ := r.g.torrents.Get(mustHash(t, demo))
	res := r.get(t, "/api/torrents/"+demo+"/metainfo", nil)
	mi, err := metainfo.Load(bytes.NewReader(res.body))
	if err != nil {
		t.Fatalf("metainfo: %v (%d)", err, res.status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	newPeer := func(raw bool) *peertest.WebRTCPeer { return newWebRTCPeer(ctx, t, r, raw) }

	// A browser that will seed: it downloads from the gateway, then both being seeders, their
	// conn ends and the slot is free again.
	seed := newPeer(false)
	torSeed, err := seed.Join(mi)
	if err != nil {
		t.Fatal(err)
	}
	waitComplete(t, torSeed, 90*time.Second)
	waitFor(t, 60*time.Second, "the seeder-to-seeder conn to close", func() bool { return r.g.bridge.Stats().PeerConnections == 0 })

	// A browser that holds the one slot: handshaken and interested, never complete. Its offer
	// may be answered by the seeding browser rather than the gateway (the tracker picks): the
	// handshake says who answered, and only the gateway's conn will do.
	holder := newPeer(true)
	ih := mi.HashInfoBytes()
	var conn net.Conn
	for conn == nil {
		c, err := holder.Connect(ctx, ih, e.Torrent().Length())
		if err != nil {
			t.Fatal(err)
		}
		theirs := exchangeHandshake(t, c, ih, holder.PeerID(), [8]byte{})
		if [20]byte(theirs[48:]) != [20]byte(r.g.peerID) {
			t.Logf("the holder's offer was answered by %x, not the gateway: again", theirs[48:])
			c.Close()
			continue
		}
		conn = c
	}
	defer conn.Close()
	if _, err := conn.Write([]byte{0, 0, 0, 1, 2}); err != nil { // interested
		t.Fatal(err)
	}
	go io.Copy(io.Discard, conn) // the gateway's bitfield, unchoke
	waitFor(t, 30*time.Second, "the holder to be the gateway's WebRTC peer", func() bool {
		_, p := e.Counts()
		return p.WebRTC == 1
	})

	// Another browser: the gateway declines its offers, so they go to the seeding browser.
	late := newPeer(false)
	torLate, err := late.Join(mi)
	if err != nil {
		t.Fatal(err)
	}
	waitComplete(t, torLate, 90*time.Second)
	gatewayID := r.g.peerID
	for _, pc := range torLate.PeerConns() {
		if [20]byte(pc.PeerID) == [20]byte(gatewayID) {
			t.Fatal("the late peer got a conn to the gateway over the limit")
		}
	}
	if m := scrapeLimitRefusals(t, r); m["webrtc_peers_per_torrent"] < 1 {
		t.Errorf("no declined offer counted: %v", m)
	}
	if n := r.g.bridge.Stats().PeerConnections; n != 1 {
		t.Errorf("gateway holds %d WebRTC peers, want the holder's one (limit 1)", n)
	}
	if _, p := e.Counts(); p.WebRTC != 1 {
		t.Errorf("gateway's WebRTC peers of the demo: %d, want the holder's one", p.WebRTC)
	}
}

// newWebRTCPeer starts a WebRTC peer on r's tracker (a raw one speaks the wire itself), closed
// when the test ends.
func newWebRTCPeer(ctx context.Context, t *testing.T, r *running, raw bool) *peertest.WebRTCPeer {
	t.Helper()
	p, err := peertest.NewWebRTCPeer(ctx, peertest.PeerOptions{Dir: t.TempDir(), TrackerURL: trackerURL(r), Raw: raw, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func mustHash(t testing.TB, ihHex string) metainfo.Hash {
	t.Helper()
	ih, err := parseInfoHash(ihHex)
	if err != nil {
		t.Fatal(err)
	}
	return ih
}

func waitComplete(t *testing.T, tor interface {
	BytesCompleted() int64
	Length() int64
}, within time.Duration) {
	t.Helper()
	waitFor(t, within, "download to complete", func() bool {
		return tor.Length() > 0 && tor.BytesCompleted() == tor.Length()
	})
}

// scrapeLimitRefusals reads swarmgate_limit_refusals_total by limit from /metrics.
func scrapeLimitRefusals(t testing.TB, r *running) map[string]float64 {
	t.Helper()
	res := r.get(t, "/metrics", nil)
	out := map[string]float64{}
	for _, line := range strings.Split(string(res.body), "\n") {
		rest, ok := strings.CutPrefix(line, `swarmgate_limit_refusals_total{limit="`)
		if !ok {
			continue
		}
		name, val, _ := strings.Cut(rest, `"} `)
		var v float64
		fmt.Sscan(val, &v)
		out[name] = v
	}
	if len(out) == 0 {
		t.Fatalf("no swarmgate_limit_refusals_total in /metrics")
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// A tracker client written against the wire format, for the gateway's /announce.

type trackerConn struct {
	ws     *websocket.Conn
	peerID string
}

var trackerPeers atomic.Int32

func trackerURL(r *running) string { return TrackerURL(r.base) }

func dialTracker(t testing.TB, r *running, hdr http.Header) *trackerConn {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(trackerURL(r), hdr)
	if err != nil {
		t.Fatalf("dial tracker: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { ws.Close() })
	return &trackerConn{ws: ws, peerID: fmt.Sprintf("-TEST-peer-id-%06d", trackerPeers.Add(1))}
}

// wireID is an infohash as the tracker protocol writes it: one char per byte.
func wireID(t testing.TB, ihHex string) string {
	ih, err := parseInfoHash(ihHex)
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	for _, v := range ih {
		b = utf8.AppendRune(b, rune(v))
	}
	return string(b)
}

func (c *trackerConn) announce(t testing.TB, ihHex string) { t.Helper(); c.announceOffers(t, ihHex, 0) }

// announceOffers announces with n offers (their SDP is not real: nobody gets to answer them).
func (c *trackerConn) announceOffers(t testing.TB, ihHex string, n int) {
	t.Helper()
	msg := map[string]any{"action": "announce", "info_hash": wireID(t, ihHex), "peer_id": c.peerID,
		"uploaded": 0, "downloaded": 0, "left": 100, "numwant": 5}
	if n > 0 {
		var offers []map[string]any
		for i := range n {
			offers = append(offers, map[string]any{"offer_id": fmt.Sprintf("offer-%s-%07d", c.peerID[14:], i),
				"offer": map[string]string{"type": "offer", "sdp": "v=0 not a real offer"}})
		}
		msg["offers"] = offers
	}
	if err := c.ws.WriteJSON(msg); err != nil {
		t.Fatal(err)
	}
}

func (c *trackerConn) next(t testing.TB) map[string]any {
	t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var m map[string]any
		if err := c.ws.ReadJSON(&m); err != nil {
			t.Fatalf("tracker read: %v", err)
		}
		if m["offer"] == nil && m["answer"] == nil { // offers relayed from other test sockets are not replies
			return m
		}
	}
}

func (c *trackerConn) announceOK(t testing.TB, ihHex string) {
	t.Helper()
	c.announce(t, ihHex)
	m := c.next(t)
	if _, bad := m["failure reason"]; bad || m["interval"] == nil || m["info_hash"] != wireID(t, ihHex) {
		t.Fatalf("announce %s: %v", ihHex, m)
	}
}

func (c *trackerConn) failure(t testing.TB, ihHex string) string {
	t.Helper()
	m := c.next(t)
	reason, ok := m["failure reason"].(string)
	if !ok || m["info_hash"] != wireID(t, ihHex) {
		t.Fatalf("want a failure for %s, got %v", ihHex, m)
	}
	return reason
}

func TestCORSOrigins(t *testing.T) {
	preflight := func(r *running, origin, method string) response {
		return r.do(t, http.MethodOptions, "/api/torrents", map[string]string{
			"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "authorization,content-type",
		}, nil)
	}
	t.Run("default", func(t *testing.T) {
		r := startGateway(t, nil)
		res := r.get(t, "/api/torrents", map[string]string{"Origin": "https://anyone.example"})
		if got := res.header.Get("Access-Control-Allow-Origin"); got != "*" {
			t.Errorf("GET from any site: Access-Control-Allow-Origin %q, want *", got)
		}
		res = preflight(r, "https://anyone.example", http.MethodPost)
		if m := res.header.Get("Access-Control-Allow-Methods"); strings.Contains(m, "POST") {
			t.Errorf("any site may POST cross-origin: Allow-Methods %q", m)
		}
	})
	t.Run("listed", func(t *testing.T) {
		admin := "https://admin.example"
		r := startGateway(t, func(c *Config) { c.CORSOrigins = []string{admin}; c.AdminToken = testToken })
		res := r.get(t, "/api/torrents", map[string]string{"Origin": admin})
		if got := res.header.Get("Access-Control-Allow-Origin"); got != admin {
			t.Errorf("GET from the listed origin: Access-Control-Allow-Origin %q", got)
		}
		res = r.get(t, "/api/torrents", map[string]string{"Origin": "https://evil.example"})
		if got := res.header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("GET from another origin: Access-Control-Allow-Origin %q, want none", got)
		}
		res = preflight(r, admin, http.MethodDelete)
		if m, h := res.header.Get("Access-Control-Allow-Methods"), strings.ToLower(res.header.Get("Access-Control-Allow-Headers")); !strings.Contains(m, "DELETE") || !strings.Contains(h, "authorization") {
			t.Errorf("preflight of the listed origin: methods %q, headers %q", m, h)
		}
		res = preflight(r, "https://evil.example", http.MethodDelete)
		if got := res.header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("preflight of another origin allowed: %q", got)
		}
	})
}
