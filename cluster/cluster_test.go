package cluster

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"

	"github.com/swarmgate/swarmgate/internal/peertest"
	"github.com/swarmgate/swarmgate/internal/trackerclient"
	"github.com/swarmgate/swarmgate/signaling"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// nats.go's and nats-server's process-wide goroutines.
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine.func1"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats.go.(*asyncCallbacksHandler).asyncCBDispatcher"),
	)
}

const waitBudget = 10 * time.Second

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitBudget)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testLog() *slog.Logger {
	if os.Getenv("CLUSTER_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// startNodes starts one node per name with an embedded NATS, each given every address as its
// seed routes (its own included, as an operator would).
func startNodes(t *testing.T, secret string, names ...string) []*Node {
	t.Helper()
	addrs := peertest.FreeLoopbackAddrs(t, len(names))
	var nodes []*Node
	for i, name := range names {
		nodes = append(nodes, startNode(t, name, addrs[i], addrs, secret))
	}
	joinAll(nodes...)
	return nodes
}

func joinAll(nodes ...*Node) {
	for _, n := range nodes {
		n.Join()
	}
}

func startNode(t testing.TB, name, listen string, routes []string, secret string) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name, cfg.Listen, cfg.Routes, cfg.Secret = name, listen, routes, secret
	cfg.HTTPURL, cfg.Log = "http://"+name+".invalid", testLog()
	cfg.Heartbeat, cfg.Timeout = 100*time.Millisecond, 500*time.Millisecond
	n, err := Start(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func memberNames(n *Node) string {
	var names []string
	for _, m := range n.Members() {
		names = append(names, m.Name)
	}
	return strings.Join(names, ",")
}

func waitMembers(t *testing.T, want string, nodes ...*Node) {
	t.Helper()
	for _, n := range nodes {
		waitFor(t, n.Self()+" to see members "+want, func() bool { return memberNames(n) == want })
	}
}

// crash stops a node as a killed process would: no goodbye, its NATS server gone at once.
func crash(n *Node) {
	close(n.stop)
	<-n.done
	n.nc.Close()
	n.shutdownServer()
}

func TestMembership(t *testing.T) {
	nodes := startNodes(t, "s3cret", "a", "b", "c")
	waitMembers(t, "a,b,c", nodes...)
	if m, ok := nodes[0].Member("b"); !ok || m.HTTPURL != "http://b.invalid" {
		t.Fatalf("a's view of b: %+v %v", m, ok)
	}

	var changes atomic.Int32
	nodes[0].OnChange(func() { changes.Add(1) })
	// Leaving on purpose is seen at once (the goodbye), a crash within the timeout.
	_ = nodes[2].Close()
	waitMembers(t, "a,b", nodes[0], nodes[1])
	crash(nodes[1])
	start := time.Now()
	waitMembers(t, "a", nodes[0])
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a crashed node was noticed after %v (timeout 500 ms)", took)
	}
	if got := changes.Load(); got != 2 {
		t.Errorf("OnChange called %d times for two departures", got)
	}
}

// TestWrongSecretCannotJoin: a node with another secret never becomes a member.
func TestWrongSecretCannotJoin(t *testing.T) {
	addrs := peertest.FreeLoopbackAddrs(t, 2)
	a := startNode(t, "a", addrs[0], addrs, "right")
	b := startNode(t, "b", addrs[1], addrs, "wrong")
	joinAll(a, b)
	time.Sleep(1500 * time.Millisecond) // routes retry every second
	if got := memberNames(a); got != "a" {
		t.Fatalf("a sees %s with a stranger around", got)
	}
	if got := memberNames(b); got != "b" {
		t.Fatalf("the stranger sees %s", got)
	}
}

func TestHomeAgreesAndMovesLittle(t *testing.T) {
	nodes := startNodes(t, "s3cret", "a", "b", "c")
	waitMembers(t, "a,b,c", nodes...)
	const keys = 3000
	counts := map[string]int{}
	before := make([]string, keys)
	for i := range keys {
		k := key(i)
		h := nodes[0].Home(k)
		for _, n := range nodes[1:] {
			if got := n.Home(k); got != h {
				t.Fatalf("key %d: a says %s, %s says %s", i, h, n.Self(), got)
			}
		}
		before[i] = h
		counts[h]++
	}
	for name, c := range counts {
		if c < keys/3*8/10 || c > keys/3*12/10 {
			t.Errorf("%s is home of %d of %d keys: uneven %v", name, c, keys, counts)
		}
	}
	_ = nodes[2].Close()
	waitMembers(t, "a,b", nodes[0])
	for i := range keys {
		after := nodes[0].Home(key(i))
		if before[i] != "c" && after != before[i] {
			t.Fatalf("key %d moved from %s to %s though %s stayed", i, before[i], after, before[i])
		}
		if after == "c" {
			t.Fatalf("key %d still homed on the departed node", i)
		}
	}
}

func key(i int) [20]byte {
	var k [20]byte
	copy(k[:], fmt.Sprintf("key-%d", i))
	return k
}

// TestTrackersAcrossNodes: three gateways' trackers joined by the bus over embedded NATS. Two
// peers whose websockets land on the two nodes that are not the swarm's home meet there and
// trade an offer and its answer, through NATS.
func TestTrackersAcrossNodes(t *testing.T) {
	addrs := peertest.FreeLoopbackAddrs(t, 3)
	var nodes []*Node
	for i, name := range []string{"a", "b", "c"} {
		nodes = append(nodes, startNode(t, name, addrs[i], addrs, "s3cret"))
	}
	urls := map[string]string{}
	servers := map[string]*signaling.Server{}
	for _, n := range nodes {
		var sig *signaling.Server
		bus, err := n.SignalBus(func(m signaling.BusMessage) { sig.Deliver(m) })
		if err != nil {
			t.Fatal(err)
		}
		cfg := signaling.DefaultConfig()
		cfg.Bus = bus
		sig, err = signaling.New(cfg, testLog())
		if err != nil {
			t.Fatal(err)
		}
		n.ShareSocketsPerIP(func() map[string]int { return sig.SocketsPerIP(2) })
		ts := httptest.NewServer(sig)
		t.Cleanup(func() { _ = bus.Close(); _ = sig.Close(); ts.Close() })
		urls[n.Self()] = "ws" + strings.TrimPrefix(ts.URL, "http")
		servers[n.Self()] = sig
		n.Join() // after its bus subscribed: whoever sees it as a member can reach its tracker
	}
	waitMembers(t, "a,b,c", nodes...)
	// An infohash whose home is a; the peers connect to b and c.
	var ih signaling.ID
	for i := 0; ; i++ {
		if ih = signaling.ID(key(i)); nodes[0].Home(ih) == "a" {
			break
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitBudget)
	defer cancel()
	answered := make(chan string, 1)
	seeder, err := trackerclient.Dial(ctx, urls["c"], signaling.ID(key(-1)), trackerclient.Handlers{
		Offer: func(_ context.Context, o signaling.Offer) (string, error) { return "answer to " + o.SDP, nil },
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer seeder.Close()
	leecher, err := trackerclient.Dial(ctx, urls["b"], signaling.ID(key(-2)), trackerclient.Handlers{
		Answer: func(_, _, _ signaling.ID, sdp string) { answered <- sdp },
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer leecher.Close()
	if err := seeder.Announce(ctx, trackerclient.AnnounceParams{InfoHash: ih, Event: "started", NumWant: 5}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the seeder in a's swarm", func() bool { return len(servers["a"].Peers(ih)) == 1 })
	err = leecher.Announce(ctx, trackerclient.AnnounceParams{InfoHash: ih, Event: "started", Left: 100, NumWant: 5,
		Offers: []trackerclient.Offer{{OfferID: signaling.ID(key(-3)), SDP: "v=0 b's offer"}}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case sdp := <-answered:
		if sdp != "answer to v=0 b's offer" {
			t.Fatalf("answer %q", sdp)
		}
	case <-ctx.Done():
		t.Fatal("no answer crossed the cluster")
	}
	if st := servers["a"].Stats(); st.Peers != 2 || st.RemoteSockets != 2 || st.OffersRelayed != 1 || st.AnswersRelayed != 1 {
		t.Fatalf("home's tracker: %+v", st)
	}
	for _, name := range []string{"b", "c"} {
		if st := servers[name].Stats(); st.Swarms != 0 || st.Forwarded == 0 {
			t.Fatalf("%s's tracker holds swarms or forwarded nothing: %+v", name, st)
		}
	}
	// b leaves: its peer leaves a's swarm at once.
	_ = leecher.Close()
	waitFor(t, "the leecher to leave a's swarm", func() bool { return len(servers["a"].Peers(ih)) == 1 })
}

func TestConfigValidate(t *testing.T) {
	base := DefaultConfig()
	base.Name = "a"
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) {}, "Listen is empty"},
		{func(c *Config) { c.Listen = "127.0.0.1:6222" }, "Secret is required"},
		{func(c *Config) { c.Listen, c.Secret, c.Name = "127.0.0.1:6222", "s", "a.b" }, `Name "a.b"`},
		{func(c *Config) { c.Listen, c.Secret, c.Routes = "127.0.0.1:6222", "s", []string{"http://x:1"} }, `Routes "http://x:1"`},
		{func(c *Config) { c.NATSURL, c.Listen = "nats://x:4222", "127.0.0.1:6222" }, "not both"},
		{func(c *Config) { c.NATSURL, c.Secret = "nats://x:4222", "s" }, "Secret belongs to an embedded"},
		{func(c *Config) { c.NATSURL, c.Timeout = "nats://x:4222", c.Heartbeat }, "two heartbeats"},
	} {
		c := base
		tc.edit(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", c, err, tc.want)
		}
	}
	ok := base
	ok.Listen, ok.Secret, ok.Routes = "127.0.0.1:6222", "s", []string{"127.0.0.1:6223", "nats-route://h:6222"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBusFrames(t *testing.T) {
	m := signaling.BusMessage{Kind: signaling.BusToSocket, From: "node-1", Socket: 1 << 40, IP: "::1", Data: []byte(`{"x":1}`)}
	str := func(b []byte) string { return string(b) }
	got, err := decodeBusMessage(appendBusMessage(nil, m), str)
	if err != nil || got.Kind != m.Kind || got.From != m.From || got.Socket != m.Socket || got.IP != m.IP || string(got.Data) != string(m.Data) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	frame := appendBusMessage([]byte("prefix"), m)[len("prefix"):]
	for i := range len(frame) - 1 {
		if _, err := decodeBusMessage(frame[:i], str); err == nil {
			t.Fatalf("a frame cut at %d decoded", i)
		}
	}
}

// TestCatalog: a torrent put on one node reaches the others, a later change wins, a node that
// joins later learns the catalog, and a pinned torrent's home is its node while that one lives.
func TestCatalog(t *testing.T) {
	addrs := peertest.FreeLoopbackAddrs(t, 3)
	a := startNode(t, "a", addrs[0], addrs, "s")
	b := startNode(t, "b", addrs[1], addrs, "s")
	joinAll(a, b)
	waitMembers(t, "a,b", a, b)
	ih := strings.Repeat("ab", 20)
	a.PutTorrent(Torrent{InfoHash: ih, Magnet: "magnet:?xt=urn:btih:" + ih})
	waitFor(t, "b to learn the torrent", func() bool { return len(b.Torrents()) == 1 })
	b.PutTorrent(Torrent{InfoHash: ih, Removed: true})
	waitFor(t, "a to learn the removal", func() bool { return len(a.Torrents()) == 0 })
	// An older change does not undo a newer one.
	a.mergeTorrents([]Torrent{{InfoHash: ih, Version: 1}})
	if len(a.Torrents()) != 0 {
		t.Fatal("an older entry brought a removed torrent back")
	}
	pinned := strings.Repeat("cd", 20)
	var key [20]byte
	copy(key[:], mustHex(t, pinned))
	for _, name := range []string{"a", "b"} {
		b.PutTorrent(Torrent{InfoHash: pinned, Pinned: name})
		waitFor(t, "a to hear of the pin", func() bool { tr, _ := a.Torrent(pinned); return tr.Pinned == name })
		if a.Home(key) != name || b.Home(key) != name {
			t.Fatalf("pinned to %s, homes %s and %s", name, a.Home(key), b.Home(key))
		}
	}
	c := startNode(t, "c", addrs[2], addrs, "s")
	c.Join()
	waitFor(t, "c to learn the catalog", func() bool { tr, ok := c.Torrent(pinned); return ok && tr.Pinned == "b" })
	if tr, ok := c.Torrent(ih); !ok || !tr.Removed {
		t.Fatalf("c's view of the removed torrent: %+v %v", tr, ok)
	}
	// A pin on a node that is gone falls back to rendezvous.
	_ = b.Close()
	waitMembers(t, "a,c", a, c)
	if h := a.Home(key); h == "b" || h != c.Home(key) {
		t.Fatalf("home after the pinned node left: a says %s, c says %s", h, c.Home(key))
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExistingNATS: nodes join through an existing NATS server (--cluster-nats) with its user
// and password in the URL, and a wrong password is refused with an error naming the server
// without the password.
func TestExistingNATS(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, Username: "sg", Password: "pw", NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("test NATS not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	addr := srv.Addr().String()
	start := func(name, url string) (*Node, error) {
		cfg := DefaultConfig()
		cfg.Name, cfg.NATSURL, cfg.Log = name, url, testLog()
		cfg.Heartbeat, cfg.Timeout = 100*time.Millisecond, 500*time.Millisecond
		n, err := Start(cfg)
		if err == nil {
			t.Cleanup(func() { _ = n.Close() })
			n.Join()
		}
		return n, err
	}
	a, err := start("a", "nats://sg:pw@"+addr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := start("b", "nats://sg:pw@"+addr)
	if err != nil {
		t.Fatal(err)
	}
	waitMembers(t, "a,b", a, b)
	_, err = start("c", "nats://sg:wrong@"+addr)
	if err == nil || strings.Contains(err.Error(), "wrong") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("wrong password: %v (want an error naming the server, not the password)", err)
	}
}
