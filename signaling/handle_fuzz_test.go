package signaling

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Fuzz targets for what the tracker reads off a socket: Server.handle (a client's message) and
// the binary-string IDs it carries. (The client side's dispatch is fuzzed in
// internal/trackerclient.) Run one with
//
//	go test -run '^$' -fuzz '^FuzzHandle$' -fuzztime 60s -parallel 1 ./signaling/

// fuzzConfig keeps every limit small, so that a few messages reach them.
func fuzzConfig() Config {
	c := DefaultConfig()
	c.MaxOffersPerAnnounce = 2
	c.MaxSwarmsPerSocket = 2
	c.MaxPeersPerSwarm = 2
	c.MaxScrapeHashes = 3
	c.AllowInfoHash = func(ih ID) bool { return ih[0] != 0xEE }
	return c
}

// fuzzConn is a socket without a websocket: what handle sends stays in its queue. kill is spent up
// front (it would close the missing websocket), so a full queue drops instead; each message is
// drained long before that.
func fuzzConn(s *Server, name string) *conn {
	c := &conn{s: s, remote: name, ip: name}
	c.killOnce.Do(func() {})
	c.writing = true // no writer starts: drain takes the queue
	s.mu.Lock()
	s.nextConn++
	c.id = s.nextConn
	s.conns[c.id] = c
	s.perIP[name]++
	s.mu.Unlock()
	return c
}

func drain(c *conn) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.queue
	c.queue = nil
	return got
}

// serverErrors are the reasons a failure reply may give, each a sentinel's text first.
var serverErrors = []error{ErrBadMessage, ErrUnknownAction, ErrUnknownEvent, ErrSwarmFull, ErrTooManySwarms,
	ErrInfoHashNotAllowed, ErrOfferRate, ErrTooManyHashes, ErrReservedPeerID, ErrNotAnnounced, ErrUnknownOffer}

func fuzzSeedMessages() [][]byte {
	ih, a, b, oid := testID(1), testID(2), testID(3), testID(4)
	j := func(v any) []byte { b, _ := json.Marshal(v); return b }
	lines := func(ms ...any) []byte {
		var out [][]byte
		for _, m := range ms {
			out = append(out, j(m))
		}
		return bytes.Join(out, []byte("\n"))
	}
	return [][]byte{
		// conn 0 announces, conn 1 announces with an offer (relayed to conn 0), conn 0 answers it.
		lines(announceMsg(ih, a, nil),
			announceMsg(ih, b, msg{"offers": offersList(oid)}),
			msg{"action": "announce", "info_hash": bin(ih), "peer_id": bin(a), "to_peer_id": bin(b),
				"offer_id": bin(oid), "answer": msg{"type": "answer", "sdp": "v=0 answer"}},
			msg{"action": "scrape"}),
		lines(announceMsg(ih, a, msg{"event": "completed", "left": 0}),
			msg{"action": "scrape", "info_hash": []string{bin(ih), bin(a)}},
			announceMsg(ih, a, msg{"event": "stopped"})),
		lines(msg{"action": "scrape", "info_hash": bin(ih)}),
		// Socket 0 announces in three swarms (the third is over MaxSwarmsPerSocket), and its peer
		// moves to socket 1 by announcing there.
		lines(announceMsg(testID(5), a, nil), msg{"action": "scrape", "info_hash": nil},
			announceMsg(testID(6), a, nil), msg{"action": "scrape"},
			announceMsg(testID(7), a, nil), announceMsg(testID(5), a, msg{"left": 0})),
		// Three peers in one swarm (the third is over MaxPeersPerSwarm); an answer nobody asked for.
		lines(announceMsg(ih, a, nil), announceMsg(ih, b, nil), announceMsg(ih, oid, nil),
			msg{"action": "announce", "info_hash": bin(ih), "peer_id": bin(b), "to_peer_id": bin(a),
				"offer_id": bin(oid), "answer": msg{"sdp": "v=0"}}),
		// More offers than MaxOffersPerAnnounce, the extra one malformed and ignored.
		lines(announceMsg(ih, a, nil),
			announceMsg(ih, b, msg{"offers": append(offersList(oid, testID(8)), msg{"offer_id": 1})})),
		[]byte(`{"action":"announce","info_hash":"x","peer_id":1}`),
		[]byte(`{"action":"announce","info_hash":"` + strings.Repeat(`\u00ee`, 20) + `","peer_id":"` + strings.Repeat(`\u0001`, 20) + `"}`),
		[]byte(`{"action":"announce","info_hash":null,"offers":[{"offer_id":"","offer":{}}],"left":"x"}`),
		[]byte(`{"action":["announce"]}`),
		[]byte(`[]`),
		[]byte(`{"action":"announce","answer":{"type":"offer","sdp":""}}`),
		[]byte(`{"action":"scrape","info_hash":["a","b","c","d"]}`),
	}
}

// FuzzHandle feeds newline-separated messages to Server.handle from two sockets in turn (line i
// from socket i%2) and checks that every reply is a JSON announce or scrape message, that a
// failure names one of the package's errors and echoes the info_hash, that replies stay small
// next to the message, that the swarm tables stay consistent, and that closing both sockets
// leaves no swarm behind.
func FuzzHandle(f *testing.F) {
	for _, m := range fuzzSeedMessages() {
		f.Add(m)
	}
	// One server for the whole run: each input leaves it empty (checked below), and a server per
	// input would start a janitor whose scheduling makes coverage flaky, which keeps the fuzzer
	// minimizing for its whole -fuzzminimizetime.
	s, err := New(fuzzConfig(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close() })
	f.Fuzz(func(t *testing.T, data []byte) {
		conns := []*conn{fuzzConn(s, "a"), fuzzConn(s, "b")}
		defer func() { // also after a failure, so the seeds that follow start from an empty server
			for _, c := range conns {
				s.dropConn(c)
			}
		}()
		for i, line := range bytes.Split(data, []byte("\n")) {
			c := conns[i%2]
			s.handle(c, line)
			out := 0
			for _, cc := range conns {
				for _, m := range drain(cc) {
					out += len(m)
					checkReply(t, line, m, cc == c)
				}
			}
			// JSON may spell a byte as \u00XX (6 bytes) and an error quotes what it refuses once,
			// so anything past this is a reply that grows with something other than the message.
			if limit := 16*len(line) + 4096; out > limit {
				t.Fatalf("message of %d bytes made %d bytes of replies (limit %d)", len(line), out, limit)
			}
			checkTables(t, s)
		}
		for _, c := range conns {
			s.dropConn(c)
		}
		if st := s.Stats(); st.Swarms != 0 || st.Peers != 0 || st.Sockets != 0 || len(s.perIP) != 0 {
			t.Fatalf("after both sockets closed: %+v, %d IPs", st, len(s.perIP))
		}
	})
}

// checkReply checks one message the server sent in answer to req; toSender says whether it went
// to the socket req came from (else it is a relayed offer or answer).
func checkReply(t *testing.T, req, reply []byte, toSender bool) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(reply, &m); err != nil {
		t.Fatalf("reply %q is not a JSON object: %v", reply, err)
	}
	var action string
	if err := json.Unmarshal(m["action"], &action); err != nil || (action != actionAnnounce && action != actionScrape) {
		t.Fatalf("reply %q: action is not announce or scrape", reply)
	}
	raw, isFailure := m["failure reason"]
	if !isFailure {
		if action == actionAnnounce {
			var ih string
			if err := json.Unmarshal(m["info_hash"], &ih); err != nil {
				t.Fatalf("reply %q: no info_hash", reply)
			}
			if _, err := parseBinaryID(ih); err != nil {
				t.Fatalf("reply %q: info_hash: %v", reply, err)
			}
		}
		return
	}
	if !toSender {
		t.Fatalf("failure %q went to another socket than the one that sent %q", reply, req)
	}
	var reason string
	if err := json.Unmarshal(raw, &reason); err != nil {
		t.Fatalf("reply %q: failure reason is not a string", reply)
	}
	known := false
	for _, e := range serverErrors {
		known = known || strings.HasPrefix(reason, e.Error())
	}
	if !known {
		t.Fatalf("failure reason %q names none of the package's errors", reason)
	}
	var in inMessage
	if json.Unmarshal(req, &in) == nil {
		want, _, _ := stringField(in.InfoHash, "info_hash")
		var got string
		_ = json.Unmarshal(m["info_hash"], &got)
		// encoding/json turns invalid UTF-8 into U+FFFD both ways, so compare what survives.
		if got != strings.ToValidUTF8(want, "\uFFFD") {
			t.Fatalf("failure to %q echoes info_hash %q, want %q", req, got, want)
		}
	}
}

// checkTables checks the server's bookkeeping: swarm lists, maps, seeder counts, socket bindings
// and every bound.
func checkTables(t *testing.T, s *Server) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for ih, sw := range s.swarms {
		if len(sw.peers) == 0 && !sw.local {
			t.Fatalf("swarm %v is empty but kept", ih)
		}
		if len(sw.list) != len(sw.peers) || len(sw.peers) > s.cfg.MaxPeersPerSwarm {
			t.Fatalf("swarm %v: %d listed, %d mapped (max %d)", ih, len(sw.list), len(sw.peers), s.cfg.MaxPeersPerSwarm)
		}
		seeders := 0
		for i, p := range sw.list {
			if p.idx != i || sw.peers[p.id] != p {
				t.Fatalf("swarm %v: peer %d out of place", ih, i)
			}
			if p.seeder {
				seeders++
			}
			if !p.c.bound(binding{ih, p.id}) {
				t.Fatalf("swarm %v: peer %v not bound to its socket", ih, p.id)
			}
			if len(p.offers) > maxPendingFactor*s.cfg.MaxOffersPerAnnounce {
				t.Fatalf("peer %v keeps %d offers", p.id, len(p.offers))
			}
		}
		if seeders != sw.seeders {
			t.Fatalf("swarm %v: counts %d seeders, has %d", ih, sw.seeders, seeders)
		}
	}
	for _, c := range s.conns {
		if len(c.peers) > s.cfg.MaxSwarmsPerSocket {
			t.Fatalf("socket %s holds %d swarms", c.remote, len(c.peers))
		}
		for _, b := range c.peers {
			sw := s.swarms[b.infoHash]
			if sw == nil || sw.peers[b.peerID] == nil || sw.peers[b.peerID].c != c {
				t.Fatalf("socket %s is bound to %v in %v, which is not its peer", c.remote, b.peerID, b.infoHash)
			}
		}
	}
}

// FuzzBinaryID checks that the binary-string form of an ID reads back as the same ID, also
// through JSON, and that a string that parses is exactly that form (one spelling per ID).
func FuzzBinaryID(f *testing.F) {
	f.Add(string(make([]byte, 20)))
	f.Add(testID(7).binary())
	f.Add(strings.Repeat("\u00ff", 20))
	f.Add(strings.Repeat("\u0100", 20))
	f.Add(strings.Repeat("a", 21))
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseBinaryID(s)
		if err != nil {
			if !errors.Is(err, ErrBadID) {
				t.Fatalf("parseBinaryID(%q): %v is not ErrBadID", s, err)
			}
		} else if id.binary() != s {
			t.Fatalf("parseBinaryID(%q) = %v, whose binary form is %q", s, id, id.binary())
		}
		var from ID
		copy(from[:], s)
		js, err := json.Marshal(from.binary())
		if err != nil {
			t.Fatal(err)
		}
		var back string
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatal(err)
		}
		if got, err := parseBinaryID(back); err != nil || got != from {
			t.Fatalf("ID %v through JSON %s: %v, %v", from, js, got, err)
		}
		if got, err := ParseID(from.String()); err != nil || got != from {
			t.Fatalf("ParseID(%q) = %v, %v", from.String(), got, err)
		}
	})
}
