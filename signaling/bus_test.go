package signaling

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"
)

// memCluster joins the trackers of several nodes in one process: each node has a queue and a
// goroutine delivering in order, as a NATS subscription does. Owners are set per infohash; an
// infohash not set is owned by owner0.
type memCluster struct {
	t      *testing.T
	mu     sync.Mutex
	nodes  map[string]*memNode
	owners map[ID]string
	owner0 string
	closed bool // queues closed: what is sent is dropped
	wg     sync.WaitGroup
}

type memNode struct {
	c         *memCluster
	name      string
	s         *Server
	url       string
	queue     chan BusMessage
	elsewhere atomic.Int64 // what SocketsElsewhere answers
}

func newMemCluster(t *testing.T, cfg Config, names ...string) *memCluster {
	t.Helper()
	checkGoroutines(t)
	mc := &memCluster{t: t, nodes: make(map[string]*memNode), owners: make(map[ID]string), owner0: names[0]}
	for _, name := range names {
		n := &memNode{c: mc, name: name, queue: make(chan BusMessage, 1024)}
		c := cfg
		c.Bus = n
		s, url := newTestServerNoLeakCheck(t, c)
		n.s, n.url = s, url
		mc.nodes[name] = n
		mc.wg.Add(1)
		go func() {
			defer mc.wg.Done()
			for m := range n.queue {
				n.s.Deliver(m)
			}
		}()
	}
	// Registered after the servers' cleanups, so it runs first: queues stop before servers close.
	t.Cleanup(func() {
		mc.mu.Lock()
		mc.closed = true
		for _, n := range mc.nodes {
			close(n.queue)
		}
		mc.mu.Unlock()
		mc.wg.Wait()
	})
	return mc
}

func (mc *memCluster) own(ih ID, node string) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	mc.owners[ih] = node
}

func (n *memNode) Self() string { return n.name }

func (n *memNode) Owner(ih ID) string {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if o, ok := n.c.owners[ih]; ok {
		return o
	}
	return n.c.owner0
}

func (n *memNode) Send(node string, m BusMessage) {
	m.Data = append([]byte(nil), m.Data...) // Send must be done with m.Data when it returns
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if to := n.c.nodes[node]; to != nil && !n.c.closed {
		to.queue <- m
	}
}

func (n *memNode) SocketsElsewhere(string) int { return int(n.elsewhere.Load()) }

// mustID reads a binary-string ID out of a decoded message.
func mustID(t *testing.T, v any) ID {
	t.Helper()
	s, _ := v.(string)
	id, err := parseBinaryID(s)
	if err != nil {
		t.Fatalf("id %q: %v", v, err)
	}
	return id
}

// TestBusOfferAnswerAcrossNodes: the swarm lives on n1; a browser on n2 and one on n3 meet in it
// and their offer and answer travel n2 → n1 → n3 and back, each reaching its socket.
func TestBusOfferAnswerAcrossNodes(t *testing.T) {
	mc := newMemCluster(t, testConfig(), "n1", "n2", "n3")
	n1, n2, n3 := mc.nodes["n1"], mc.nodes["n2"], mc.nodes["n3"]
	a, b := dialRaw(t, n2.url), dialRaw(t, n3.url)
	ih, pa, pb, oid := testID(1), testID(2), testID(3), testID(4)

	if r := b.announce(ih, pb, msg{"event": "started", "left": 0}); num(r["complete"]) != 1 {
		t.Fatalf("reply %v", r)
	}
	r := a.announce(ih, pa, msg{"event": "started", "offers": offersList(oid)})
	if num(r["complete"]) != 1 || num(r["incomplete"]) != 1 {
		t.Fatalf("reply %v: the swarm's counts should be n1's, holding both", r)
	}
	o := b.next()
	if o["peer_id"] != bin(pa) || o["offer_id"] != bin(oid) {
		t.Fatalf("relayed offer %v", o)
	}
	b.answer(ih, pb, pa, oid, "v=0 answer")
	ans := a.next()
	if ans["peer_id"] != bin(pb) || ans["to_peer_id"] != bin(pa) || ans["offer_id"] != bin(oid) {
		t.Fatalf("relayed answer %v", ans)
	}
	if body, _ := ans["answer"].(map[string]any); body["sdp"] != "v=0 answer" {
		t.Fatalf("answer body %v", ans["answer"])
	}

	// The owner counts a relayed answer once it has sent it: the answer can arrive first.
	waitFor(t, "n1 to count the relayed answer", func() bool { return n1.s.Stats().AnswersRelayed == 1 })
	st1, st2 := n1.s.Stats(), n2.s.Stats()
	if st1.Swarms != 1 || st1.Peers != 2 || st1.RemoteSockets != 2 || st1.OffersRelayed != 1 || st1.AnswersRelayed != 1 {
		t.Fatalf("n1 (owner) stats %+v", st1)
	}
	if st2.Swarms != 0 || st2.Sockets != 1 || st2.Forwarded != 1 {
		t.Fatalf("n2 stats %+v", st2)
	}

	// A socket that closes leaves the owner's swarm at once.
	_ = a.ws.Close()
	waitFor(t, "n2's closed socket to leave n1's swarm", func() bool { return len(n1.s.Peers(ih)) == 1 })
	// A node that leaves takes its sockets' peers with it.
	n1.s.NodeGone("n3")
	if got := n1.s.Peers(ih); len(got) != 0 {
		t.Fatalf("peers after n3 left: %v", got)
	}
	if st := n1.s.Stats(); st.RemoteSockets != 0 {
		t.Fatalf("remote sockets after both left: %d", st.RemoteSockets)
	}
}

// TestBusSwarmsOwnedHere: a swarm a node owns is served there without the bus, and failures of
// a forwarded message reach the socket that sent it.
func TestBusSwarmsOwnedHere(t *testing.T) {
	mc := newMemCluster(t, testConfig(), "n1", "n2")
	n1, n2 := mc.nodes["n1"], mc.nodes["n2"]
	here, there := testID(1), testID(2)
	mc.own(here, "n2")
	a := dialRaw(t, n2.url)
	a.announce(here, testID(3), nil)
	a.announce(there, testID(3), nil)
	if st := n2.s.Stats(); st.Swarms != 1 || st.Forwarded != 1 {
		t.Fatalf("n2 stats %+v", st)
	}
	if st := n1.s.Stats(); st.Swarms != 1 {
		t.Fatalf("n1 stats %+v", st)
	}
	// Bad input forwarded to n1 fails there and the failure comes back.
	a.send(msg{"action": "announce", "info_hash": bin(there), "peer_id": "short"})
	a.expectFailure("announce", bin(there), "peer_id")
	// A message too broken to name its swarm fails where the socket is.
	a.sendRaw(`[1,2]`)
	a.expectFailure("announce", "", "not a JSON object")
}

// TestBusLocalPeerOnOwner: the gateway's local peer on the swarm's owner answers the offer of a
// browser on another node, and its own offers reach that browser.
func TestBusLocalPeerOnOwner(t *testing.T) {
	mc := newMemCluster(t, testConfig(), "n1", "n2")
	n1, n2 := mc.nodes["n1"], mc.nodes["n2"]
	lid, ih, pa, oid := testID(99), testID(1), testID(2), testID(4)
	f := newFakeLocal()
	n1.s.AttachLocal(lid, f)
	n1.s.Join(ih)
	a := dialRaw(t, n2.url)
	if r := a.announce(ih, pa, msg{"offers": offersList(oid)}); num(r["complete"]) != 1 {
		t.Fatalf("local peer not counted as seeder: %v", r)
	}
	if o := f.nextOffer(t); o.PeerID != pa || o.OfferID != oid {
		t.Fatalf("offer to local %+v", o)
	}
	ans := a.next()
	if ans["peer_id"] != bin(lid) || ans["offer_id"] != bin(oid) {
		t.Fatalf("local answer %v", ans)
	}

	done := make(chan string, 1)
	go func() {
		sdp, err := n1.s.SendOffer(t.Context(), ih, pa, "v=0 local offer")
		if err != nil {
			sdp = "error: " + err.Error()
		}
		done <- sdp
	}()
	o := a.next()
	if o["peer_id"] != bin(lid) {
		t.Fatalf("local offer %v", o)
	}
	a.answer(ih, pa, lid, mustID(t, o["offer_id"]), "v=0 answer to local")
	if got := <-done; got != "v=0 answer to local" {
		t.Fatalf("SendOffer = %q", got)
	}
}

// TestBusSocketsPerIPClusterWide: the sockets an address holds on other nodes count against
// MaxSocketsPerIP here.
func TestBusSocketsPerIPClusterWide(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSocketsPerIP = 2
	mc := newMemCluster(t, cfg, "n1", "n2")
	n1 := mc.nodes["n1"]
	dialRaw(t, n1.url)
	n1.elsewhere.Store(1)
	_, resp, err := new(websocket.Dialer).Dial(n1.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third socket of one address across the cluster: err %v, resp %v", err, resp)
	}
	resp.Body.Close()
	if st := n1.s.Stats(); st.SocketsRefused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestBusOwnersChangedMovesSwarm: when a swarm's owner changes, each socket's last announce goes
// to the new owner at once, which then holds the peer; a stopped peer is not brought back.
func TestBusOwnersChangedMovesSwarm(t *testing.T) {
	mc := newMemCluster(t, testConfig(), "n1", "n2", "n3")
	n1, n2, n3 := mc.nodes["n1"], mc.nodes["n2"], mc.nodes["n3"]
	ih, gone := testID(1), testID(9)
	a := dialRaw(t, n2.url)
	a.announce(ih, testID(2), msg{"event": "started", "left": 0, "offers": offersList(testID(4))})
	a.announce(gone, testID(2), nil)
	a.send(announceMsg(gone, testID(2), msg{"event": "stopped"}))
	a.next()
	if len(n1.s.Peers(ih)) != 1 || len(n1.s.Peers(gone)) != 0 {
		t.Fatalf("n1 holds %v and %v", n1.s.Peers(ih), n1.s.Peers(gone))
	}

	mc.own(ih, "n3")
	mc.own(gone, "n3")
	n2.s.OwnersChanged()
	waitFor(t, "the peer to reach n3's swarm", func() bool { return len(n3.s.Peers(ih)) == 1 })
	if r := a.next(); r["action"] != "announce" || num(r["complete"]) != 1 {
		t.Fatalf("reply to the replayed announce: %v (the peer said left 0: a seeder)", r)
	}
	if got := n3.s.SwarmPeers(ih); len(got) != 1 || !got[0].Seeder {
		t.Fatalf("n3's view of the peer: %+v", got)
	}

	// The owner is now the socket's own node: the replay is served there.
	mc.own(ih, "n2")
	n2.s.OwnersChanged()
	if len(n2.s.Peers(ih)) != 1 {
		t.Fatalf("n2 holds %v", n2.s.Peers(ih))
	}
	// Nothing moved: nothing is sent again.
	before := n2.s.Stats().Replayed
	n2.s.OwnersChanged()
	if st := n2.s.Stats(); st.Replayed != before || before != 2 {
		t.Fatalf("replayed %d then %d, want 2 and no more", before, st.Replayed)
	}
	if len(n3.s.Peers(gone)) != 0 {
		t.Fatal("a stopped peer was replayed")
	}
}
