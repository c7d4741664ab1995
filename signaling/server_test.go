package signaling

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

func TestIDEncoding(t *testing.T) {
	id := testID(7)
	if got, err := ParseID(id.String()); err != nil || got != id {
		t.Fatalf("ParseID(String()) = %v, %v", got, err)
	}
	if _, err := ParseID("zz"); !errors.Is(err, ErrBadID) {
		t.Fatalf("ParseID short: %v", err)
	}
	// The wire form is one code point per byte, as JS strings carry it.
	runes := []rune(bin(id))
	if len(runes) != 20 {
		t.Fatalf("binary form has %d runes", len(runes))
	}
	for i, r := range runes {
		if r != rune(id[i]) {
			t.Fatalf("rune %d = %U, want %U", i, r, id[i])
		}
	}
	// Through JSON and back.
	b, _ := json.Marshal(bin(id))
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if got, err := parseBinaryID(s); err != nil || got != id {
		t.Fatalf("round trip = %v, %v", got, err)
	}
	for _, bad := range []string{"", strings.Repeat("a", 19), strings.Repeat("a", 21), strings.Repeat("a", 19) + "€", string(utf8.RuneError) + strings.Repeat("a", 19)} {
		if _, err := parseBinaryID(bad); !errors.Is(err, ErrBadID) {
			t.Errorf("parseBinaryID(%q) = %v, want ErrBadID", bad, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	for _, tc := range []struct {
		field string
		mut   func(*Config)
	}{
		{"AnnounceInterval", func(c *Config) { c.AnnounceInterval = 0 }},
		{"PingInterval", func(c *Config) { c.PingInterval = -1 }},
		{"PeerTimeout", func(c *Config) { c.PeerTimeout = time.Second }},
		{"OfferTimeout", func(c *Config) { c.OfferTimeout = 0 }},
		{"MaxMessageBytes", func(c *Config) { c.MaxMessageBytes = 10 }},
		{"MaxOffersPerAnnounce", func(c *Config) { c.MaxOffersPerAnnounce = 0 }},
		{"MaxSwarmsPerSocket", func(c *Config) { c.MaxSwarmsPerSocket = 0 }},
		{"MaxPeersPerSwarm", func(c *Config) { c.MaxPeersPerSwarm = 0 }},
		{"MaxScrapeHashes", func(c *Config) { c.MaxScrapeHashes = 0 }},
		{"SendQueue", func(c *Config) { c.SendQueue = 0 }},
	} {
		c := DefaultConfig()
		tc.mut(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: Validate = %v", tc.field, err)
		}
		if _, err := New(c, nil); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New = %v", tc.field, err)
		}
	}
}

func TestHTTPWithoutUpgrade(t *testing.T) {
	checkGoroutines(t)
	s, err := New(testConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/announce", nil))
	if rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["error"] == "" {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
}

func TestCheckOrigin(t *testing.T) {
	cfg := testConfig()
	cfg.CheckOrigin = func(r *http.Request) bool { return r.Header.Get("Origin") == "https://ok.example" }
	_, url := newTestServer(t, cfg)
	_, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bad origin: err %v, resp %v", err, resp)
	}
	_ = resp.Body.Close()
	ws, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"https://ok.example"}})
	if err != nil {
		t.Fatalf("good origin: %v", err)
	}
	_ = resp.Body.Close()
	_ = ws.Close()
}

// Browser-only swarm: the server is a plain tracker relaying offer and answer.
func TestOfferAnswerRelay(t *testing.T) {
	s, url := newTestServer(t, testConfig())
	a, b := dialRaw(t, url), dialRaw(t, url)
	ih, pa, pb, oid := testID(1), testID(2), testID(3), testID(4)

	r := b.announce(ih, pb, msg{"event": "started", "left": 0})
	if num(r["complete"]) != 1 || num(r["incomplete"]) != 0 || num(r["interval"]) != 120 {
		t.Fatalf("reply %v", r)
	}
	r = a.announce(ih, pa, msg{"event": "started", "offers": offersList(oid)})
	if num(r["complete"]) != 1 || num(r["incomplete"]) != 1 {
		t.Fatalf("reply %v", r)
	}
	o := b.next()
	if o["action"] != "announce" || o["info_hash"] != bin(ih) || o["peer_id"] != bin(pa) || o["offer_id"] != bin(oid) {
		t.Fatalf("relayed offer %v", o)
	}
	if off, _ := o["offer"].(map[string]any); off["type"] != "offer" || off["sdp"] != "v=0 offer "+oid.String() {
		t.Fatalf("offer body %v", o["offer"])
	}

	b.answer(ih, pb, pa, oid, "v=0 answer")
	ans := a.next()
	if ans["action"] != "announce" || ans["info_hash"] != bin(ih) || ans["peer_id"] != bin(pb) ||
		ans["to_peer_id"] != bin(pa) || ans["offer_id"] != bin(oid) {
		t.Fatalf("relayed answer %v", ans)
	}
	if body, _ := ans["answer"].(map[string]any); body["type"] != "answer" || body["sdp"] != "v=0 answer" {
		t.Fatalf("answer body %v", ans["answer"])
	}
	// An answer is not an announce: no reply to b, and nothing else anywhere.
	b.expectNothing()
	a.expectNothing()

	st := s.Stats()
	if st.Sockets != 2 || st.Swarms != 1 || st.Peers != 2 || st.Announces != 2 || st.OffersRelayed != 1 || st.AnswersRelayed != 1 || st.Failures != 0 {
		t.Fatalf("stats %+v", st)
	}
	if peers := s.Peers(ih); len(peers) != 2 {
		t.Fatalf("Peers = %v", peers)
	}
}

func TestOffersSpreadAndCapped(t *testing.T) {
	cfg := testConfig()
	cfg.MaxOffersPerAnnounce = 3
	s, url := newTestServer(t, cfg)
	ih := testID(1)
	var others []*rawPeer
	for i := range 5 {
		p := dialRaw(t, url)
		p.announce(ih, testID(byte(10+i)), nil)
		others = append(others, p)
	}
	a := dialRaw(t, url)
	pa := testID(2)
	// Six offers, three used; each to a different peer; extra ignored without failure.
	a.announce(ih, pa, msg{"offers": offersList(testID(40), testID(41), testID(42), testID(43), testID(44), testID(45))})
	a.barrier()
	got := 0
	for _, p := range others {
		switch n := len(p.barrier()); n {
		case 0:
		case 1:
			got++
		default:
			t.Fatalf("a peer got %d offers from one announce", n)
		}
	}
	if got != 3 || s.Stats().OffersRelayed != 3 {
		t.Fatalf("%d offers delivered, stats %+v", got, s.Stats())
	}
	// Offers never go back to the offerer's own socket.
	solo := dialRaw(t, url)
	solo.announce(testID(9), testID(8), msg{"offers": offersList(testID(46))})
	solo.expectNothing()
}

func TestScrape(t *testing.T) {
	s, url := newTestServer(t, testConfig())
	a, b := dialRaw(t, url), dialRaw(t, url)
	ih1, ih2, unknown := testID(1), testID(2), testID(3)
	a.announce(ih1, testID(10), msg{"left": 0})
	b.announce(ih1, testID(11), nil)
	b.announce(ih2, testID(11), nil)
	b.announce(ih2, testID(11), msg{"event": "completed", "left": 0})

	check := func(m msg, ih ID, complete, incomplete, downloaded int) {
		t.Helper()
		files, _ := m["files"].(map[string]any)
		f, ok := files[bin(ih)].(map[string]any)
		if !ok {
			t.Fatalf("no entry for %v in %v", ih, m)
		}
		if num(f["complete"]) != complete || num(f["incomplete"]) != incomplete || num(f["downloaded"]) != downloaded {
			t.Fatalf("%v: %v, want %d/%d/%d", ih, f, complete, incomplete, downloaded)
		}
	}
	scrape := func(v any) msg {
		t.Helper()
		req := msg{"action": "scrape"}
		if v != nil {
			req["info_hash"] = v
		}
		a.send(req)
		m := a.next()
		if m["action"] != "scrape" || num(m["flags"].(map[string]any)["min_request_interval"]) != 600 {
			t.Fatalf("scrape reply %v", m)
		}
		return m
	}
	m := scrape(bin(ih1))
	check(m, ih1, 1, 1, 0)
	if n := len(m["files"].(map[string]any)); n != 1 {
		t.Fatalf("%d files", n)
	}
	m = scrape([]string{bin(ih1), bin(ih2), bin(unknown)})
	check(m, ih1, 1, 1, 0)
	check(m, ih2, 1, 0, 1)
	check(m, unknown, 0, 0, 0)
	m = scrape(nil)
	check(m, ih1, 1, 1, 0)
	check(m, ih2, 1, 0, 1)
	if n := len(m["files"].(map[string]any)); n != 2 {
		t.Fatalf("scrape all: %d files", n)
	}
	if s.Stats().Scrapes != 3 {
		t.Fatalf("stats %+v", s.Stats())
	}
}

func TestScrapeAllCapped(t *testing.T) {
	cfg := testConfig()
	cfg.MaxScrapeHashes = 3
	_, url := newTestServer(t, cfg)
	a := dialRaw(t, url)
	for i := range 5 {
		a.announce(testID(byte(i)), testID(100), nil)
	}
	a.send(msg{"action": "scrape"})
	if n := len(a.next()["files"].(map[string]any)); n != 3 {
		t.Fatalf("scrape all returned %d files, cap 3", n)
	}
	a.send(msg{"action": "scrape", "info_hash": []string{bin(testID(0)), bin(testID(1)), bin(testID(2)), bin(testID(3))}})
	a.expectFailure("scrape", "", "too many info hashes")
}

func TestMalformedMessages(t *testing.T) {
	cfg := testConfig()
	s, url := newTestServer(t, cfg)
	p := dialRaw(t, url)
	ih, pid := testID(1), testID(2)
	good := func() msg { return announceMsg(ih, pid, nil) }
	with := func(k string, v any) string {
		m := good()
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, tc := range []struct {
		name, frame, action, infoHash, reason string
	}{
		{"not JSON", `{"action":`, "announce", "", "not a JSON object"},
		{"JSON array", `[1,2]`, "announce", "", "not a JSON object"},
		{"JSON string", `"announce"`, "announce", "", "not a JSON object"},
		{"null", `null`, "announce", "", "unknown action"},
		{"no action", with("action", nil), "announce", bin(ih), "unknown action"},
		{"action not a string", with("action", 5), "announce", bin(ih), "action is not a string"},
		{"unknown action", with("action", "connect"), "announce", bin(ih), "unknown action"},
		{"missing info_hash", with("info_hash", nil), "announce", "", "info_hash missing"},
		{"info_hash a number", with("info_hash", 7), "announce", "", "info_hash is not a string"},
		{"info_hash too short", with("info_hash", "abc"), "announce", "abc", "3 bytes"},
		{"info_hash too long", with("info_hash", strings.Repeat("a", 21)), "announce", strings.Repeat("a", 21), "longer than 20"},
		{"info_hash rune > 0xFF", with("info_hash", strings.Repeat("a", 19)+"Ā"), "announce", strings.Repeat("a", 19) + "Ā", "U+0100"},
		{"missing peer_id", with("peer_id", nil), "announce", bin(ih), "peer_id missing"},
		{"bad peer_id", with("peer_id", "x"), "announce", bin(ih), "peer_id"},
		{"unknown event", with("event", "paused"), "announce", bin(ih), "unknown event"},
		{"event not a string", with("event", true), "announce", bin(ih), "event is not a string"},
		{"left not a number", with("left", "lots"), "announce", bin(ih), "left is not a number"},
		{"offers not an array", with("offers", msg{"offer_id": bin(testID(3))}), "announce", bin(ih), "offers is not an array"},
		{"offer not an object", with("offers", []any{1}), "announce", bin(ih), "offers[0] is not an object"},
		{"offer bad offer_id", with("offers", []msg{{"offer_id": "short", "offer": msg{"type": "offer", "sdp": "x"}}}), "announce", bin(ih), "offers[0].offer_id"},
		{"offer without sdp", with("offers", []msg{{"offer_id": bin(testID(3)), "offer": msg{"type": "offer"}}}), "announce", bin(ih), "sdp missing"},
		{"offer of type answer", with("offers", []msg{{"offer_id": bin(testID(3)), "offer": msg{"type": "answer", "sdp": "x"}}}), "announce", bin(ih), "want \"offer\""},
		{"answer without to_peer_id", with("answer", msg{"type": "answer", "sdp": "x"}), "announce", bin(ih), "to_peer_id missing"},
		{"answer not an object", `{"action":"announce","info_hash":"` + strings.Repeat("a", 20) + `","peer_id":"` + strings.Repeat("b", 20) + `","to_peer_id":"` + strings.Repeat("c", 20) + `","offer_id":"` + strings.Repeat("d", 20) + `","answer":"sdp"}`, "announce", strings.Repeat("a", 20), "answer is not an object"},
		{"scrape info_hash a number", `{"action":"scrape","info_hash":5}`, "scrape", "", "neither a string nor an array"},
		{"scrape bad hash in array", `{"action":"scrape","info_hash":["abc"]}`, "scrape", "", "info_hash[0]"},
		{"scrape bad single hash", `{"action":"scrape","info_hash":"abc"}`, "scrape", "abc", "3 bytes"},
		{"invalid UTF-8", "{\"action\":\"announce\",\"info_hash\":\"" + strings.Repeat("a", 19) + "\xff\"}", "announce", strings.Repeat("a", 19) + "\uFFFD", "U+FFFD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.t = t
			p.sendRaw(tc.frame)
			p.expectFailure(tc.action, tc.infoHash, tc.reason)
			// The socket and the server stay usable.
			p.announce(ih, pid, nil)
		})
	}
	p.t = t
	// Also through a binary frame, which the reference server parses alike.
	b, _ := json.Marshal(good())
	if err := p.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		t.Fatal(err)
	}
	if m := p.next(); m["interval"] == nil {
		t.Fatalf("binary frame announce: %v", m)
	}
	if st := s.Stats(); st.Sockets != 1 || st.Peers != 1 || st.Failures == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestOversizeFrameClosesSocket(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMessageBytes = 4096
	s, url := newTestServer(t, cfg)
	p := dialRaw(t, url)
	p.announce(testID(1), testID(2), nil)
	p.send(announceMsg(testID(1), testID(2), msg{"offers": []msg{{"offer_id": bin(testID(3)), "offer": msg{"type": "offer", "sdp": strings.Repeat("x", 5000)}}}}))
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		t.Fatal("oversize frame did not close the socket")
	}
	waitFor(t, "socket and its peers forgotten", func() bool { st := s.Stats(); return st.Sockets == 0 && st.Peers == 0 })
	// Others are unaffected.
	dialRaw(t, url).announce(testID(1), testID(5), nil)
}

func TestAnswerSpoofingRefused(t *testing.T) {
	_, url := newTestServer(t, testConfig())
	ih, pa, pb, pc, oid := testID(1), testID(2), testID(3), testID(4), testID(5)
	a, b, c := dialRaw(t, url), dialRaw(t, url), dialRaw(t, url)
	b.announce(ih, pb, nil)
	a.announce(ih, pa, msg{"offers": offersList(oid)})
	if o := b.next(); o["offer_id"] != bin(oid) {
		t.Fatalf("b got %v", o)
	}
	c.announce(ih, pc, nil)

	// c never got the offer: answering it is refused.
	c.answer(ih, pc, pa, oid, "spoof")
	c.expectFailure("announce", bin(ih), "no pending offer")
	// c claims b's peer_id, which is not bound to c's socket.
	c.answer(ih, pb, pa, oid, "spoof")
	c.expectFailure("announce", bin(ih), "not announced on this socket")
	// An answer in a swarm c never joined.
	c.answer(testID(9), pc, pa, oid, "spoof")
	c.expectFailure("announce", bin(testID(9)), "not announced on this socket")
	// b answers with a spoofed to_peer_id.
	b.answer(ih, pb, pc, oid, "misdirected")
	b.expectFailure("announce", bin(ih), "no pending offer")
	// b answers an offer_id that does not exist.
	b.answer(ih, pb, pa, testID(6), "unknown")
	b.expectFailure("announce", bin(ih), "no pending offer")
	a.expectNothing()
	c.expectNothing()

	// The real answer goes through once.
	b.answer(ih, pb, pa, oid, "real")
	if m := a.next(); m["answer"].(map[string]any)["sdp"] != "real" {
		t.Fatalf("a got %v", m)
	}
	b.answer(ih, pb, pa, oid, "again")
	b.expectFailure("announce", bin(ih), "no pending offer")
	a.expectNothing()
}

func TestOfferExpires(t *testing.T) {
	cfg := testConfig()
	cfg.OfferTimeout = 50 * time.Millisecond
	s, url := newTestServer(t, cfg)
	ih, pa, pb, oid := testID(1), testID(2), testID(3), testID(4)
	a, b := dialRaw(t, url), dialRaw(t, url)
	b.announce(ih, pb, nil)
	a.announce(ih, pa, msg{"offers": offersList(oid)})
	b.next()
	waitFor(t, "offer to expire", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.swarms[ih].peers[pa].offers) == 0
	})
	b.answer(ih, pb, pa, oid, "late")
	b.expectFailure("announce", bin(ih), "no pending offer")
	a.expectNothing()
}

func TestManySwarmsOneSocket(t *testing.T) {
	s, url := newTestServer(t, testConfig())
	a, b := dialRaw(t, url), dialRaw(t, url)
	pa, pb := testID(200), testID(201)
	const n = 40
	for i := range n {
		b.announce(testID(byte(i)), pb, nil)
	}
	for i := range n {
		a.announce(testID(byte(i)), pa, msg{"offers": offersList(testID(byte(100 + i)))})
	}
	for i := range n {
		o := b.next()
		if o["info_hash"] != bin(testID(byte(i))) || o["offer_id"] != bin(testID(byte(100+i))) {
			t.Fatalf("offer %d: %v", i, o)
		}
		b.answer(testID(byte(i)), pb, pa, testID(byte(100+i)), "ans")
	}
	for i := range n {
		if m := a.next(); m["info_hash"] != bin(testID(byte(i))) || m["answer"] == nil {
			t.Fatalf("answer %d: %v", i, m)
		}
	}
	if st := s.Stats(); st.Swarms != n || st.Peers != 2*n {
		t.Fatalf("stats %+v", st)
	}
	_ = b.ws.Close()
	waitFor(t, "b's peers to leave with its socket", func() bool { return s.Stats().Peers == n })
}

func TestReannounceFromNewSocket(t *testing.T) {
	s, url := newTestServer(t, testConfig())
	ih, pp, pa := testID(1), testID(2), testID(3)
	old, cur, a := dialRaw(t, url), dialRaw(t, url), dialRaw(t, url)
	old.announce(ih, pp, nil)
	cur.announce(ih, pp, nil)
	if st := s.Stats(); st.Peers != 1 {
		t.Fatalf("stats %+v", st)
	}
	a.announce(ih, pa, msg{"offers": offersList(testID(10))})
	if o := cur.next(); o["offer_id"] != bin(testID(10)) {
		t.Fatalf("new socket got %v", o)
	}
	old.expectNothing()
	// The old socket can no longer answer or stop as pp.
	old.answer(ih, pp, pa, testID(10), "stale")
	old.expectFailure("announce", bin(ih), "not announced on this socket")
	old.announce(ih, testID(4), nil) // old can still announce another peer
	old.send(announceMsg(ih, pp, msg{"event": "stopped"}))
	old.next()
	if !containsID(s.Peers(ih), pp) {
		t.Fatal("stopped from the old socket removed the peer")
	}
	// Closing the old socket leaves the moved peer in place.
	_ = old.ws.Close()
	waitFor(t, "old socket gone", func() bool { return s.Stats().Sockets == 2 })
	if !containsID(s.Peers(ih), pp) || containsID(s.Peers(ih), testID(4)) {
		t.Fatalf("peers after close: %v", s.Peers(ih))
	}
	cur.answer(ih, pp, pa, testID(10), "fresh")
	if m := a.next(); m["answer"].(map[string]any)["sdp"] != "fresh" {
		t.Fatalf("a got %v", m)
	}
}

func containsID(ids []ID, id ID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func TestStoppedRemoves(t *testing.T) {
	s, url := newTestServer(t, testConfig())
	ih := testID(1)
	a, b := dialRaw(t, url), dialRaw(t, url)
	a.announce(ih, testID(2), msg{"left": 0})
	b.announce(ih, testID(3), nil)
	r := a.announce(ih, testID(2), msg{"event": "stopped", "offers": offersList(testID(9))})
	if num(r["complete"]) != 0 || num(r["incomplete"]) != 1 {
		t.Fatalf("reply after stop %v", r)
	}
	b.expectNothing() // a stopped announce relays no offers
	r = b.announce(ih, testID(3), msg{"event": "stopped"})
	if num(r["complete"]) != 0 || num(r["incomplete"]) != 0 {
		t.Fatalf("reply after stop %v", r)
	}
	if st := s.Stats(); st.Swarms != 0 || st.Peers != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Stopping an unknown peer is harmless.
	b.announce(testID(7), testID(3), msg{"event": "stopped"})
}

func TestCaps(t *testing.T) {
	cfg := testConfig()
	cfg.MaxPeersPerSwarm = 2
	cfg.MaxSwarmsPerSocket = 3
	_, url := newTestServer(t, cfg)
	ih := testID(1)
	a, b, c := dialRaw(t, url), dialRaw(t, url), dialRaw(t, url)
	a.announce(ih, testID(2), nil)
	b.announce(ih, testID(3), nil)
	c.send(announceMsg(ih, testID(4), nil))
	c.expectFailure("announce", bin(ih), "swarm is full")
	a.announce(ih, testID(2), nil) // known peers still re-announce
	c.announce(testID(5), testID(4), nil)

	a.announce(testID(6), testID(2), nil)
	a.announce(testID(7), testID(2), nil)
	a.send(announceMsg(testID(8), testID(2), nil))
	a.expectFailure("announce", bin(testID(8)), "too many swarms")
	a.announce(testID(7), testID(2), nil)
	a.announce(testID(7), testID(2), msg{"event": "stopped"})
	a.announce(testID(8), testID(2), nil) // room again after stopping one
}

func TestPeerExpiry(t *testing.T) {
	cfg := testConfig()
	cfg.AnnounceInterval = 50 * time.Millisecond
	cfg.PeerTimeout = 100 * time.Millisecond
	s, url := newTestServer(t, cfg)
	a := dialRaw(t, url)
	r := a.announce(testID(1), testID(2), nil)
	if num(r["interval"]) != 1 {
		t.Fatalf("sub-second interval sent as %v, want 1", r["interval"])
	}
	waitFor(t, "peer to expire", func() bool { st := s.Stats(); return st.Peers == 0 && st.Swarms == 0 })
	if s.Stats().Sockets != 1 {
		t.Fatal("expiry closed the socket")
	}
	a.announce(testID(1), testID(2), nil)
}

func TestPingKeepsAliveAndSilenceCloses(t *testing.T) {
	cfg := testConfig()
	cfg.PingInterval = 100 * time.Millisecond
	s, url := newTestServer(t, cfg)

	// A client that reads answers pings (gorilla's default handler) and stays.
	pings := make(chan struct{}, 100)
	p := dialRawSetup(t, url, func(ws *websocket.Conn) {
		ws.SetPingHandler(func(data string) error {
			pings <- struct{}{}
			return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
	})
	for range 3 { // 3 pings = 300 ms > the 200 ms read timeout
		select {
		case <-pings:
		case <-time.After(waitTimeout):
			t.Fatal("no ping")
		}
	}
	p.announce(testID(1), testID(2), nil)

	// A client that never reads never pongs and is dropped.
	mute := dialWS(t, url, nil)
	defer mute.Close()
	waitFor(t, "silent socket dropped", func() bool { return s.Stats().Sockets == 1 })
}

func TestCloseIdempotent(t *testing.T) {
	s, url := newTestServer(t, testConfig())
	p := dialRaw(t, url)
	p.announce(testID(1), testID(2), nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		t.Fatal("socket still open after Close")
	}
	_, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Close: %v %v", err, resp)
	}
	_ = resp.Body.Close()
}

func TestSwarmStatsAddUpReportedBytes(t *testing.T) {
	s, url := newTestServer(t, testConfig())
	a, b := dialRaw(t, url), dialRaw(t, url)
	ih := testID(1)
	a.announce(ih, testID(10), msg{"left": 0, "uploaded": 5000, "downloaded": 100})
	b.announce(ih, testID(11), msg{"left": 10, "uploaded": 700, "downloaded": 4000})
	// A bad counter reads as 0 and does not fail the announce.
	b.announce(ih, testID(11), msg{"left": 10, "uploaded": "lots", "downloaded": 4100})
	got := s.SwarmStats(ih)
	want := SwarmStats{Peers: 2, Seeders: 1, Uploaded: 5000, Downloaded: 4200}
	if got != want {
		t.Fatalf("SwarmStats = %+v, want %+v", got, want)
	}
	if got := s.SwarmStats(testID(2)); got != (SwarmStats{}) {
		t.Fatalf("unknown swarm: %+v", got)
	}
}
