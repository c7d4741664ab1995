package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmgate/swarmgate/cluster"
	"github.com/swarmgate/swarmgate/live"

	"github.com/swarmgate/swarmgate/internal/peertest"
)

// startCluster starts one gateway per name, joined as a cluster by embedded NATS on loopback,
// and waits until each sees all.
func startCluster(t *testing.T, names ...string) []*running {
	t.Helper()
	return startClusterWith(t, nil, names...)
}

// startClusterWith is startCluster with each node's config changed by change (nil: none).
func startClusterWith(t *testing.T, change func(*Config), names ...string) []*running {
	t.Helper()
	routes := peertest.FreeLoopbackAddrs(t, len(names))
	var nodes []*running
	for i, name := range names {
		nodes = append(nodes, startGateway(t, func(c *Config) {
			c.NodeName, c.ClusterListen, c.ClusterRoutes, c.ClusterSecret = name, routes[i], routes, "test-secret"
			// uTP dials outlive Client.Close, and a node that stops leaves dials to it behind.
			c.tuneTorrent = func(tc *torrent.ClientConfig) { tc.DisableUTP = true }
			if change != nil {
				change(c)
			}
		}))
	}
	for _, r := range nodes {
		waitFor(t, 15*time.Second, r.g.cluster.node.Self()+" to see every node", func() bool {
			return len(clusterOf(t, r).Members) == len(names)
		})
	}
	return nodes
}

func clusterOf(t *testing.T, r *running) clusterView {
	t.Helper()
	res := r.get(t, "/api/cluster", nil)
	var v clusterView
	if res.status != http.StatusOK || json.Unmarshal(res.body, &v) != nil {
		t.Fatalf("GET /api/cluster: %d %s", res.status, res.body)
	}
	return v
}

// holders are the nodes whose own registry and torrent client hold ih.
func holders(nodes []*running, ih torrent.InfoHash) (out []*running) {
	for _, r := range nodes {
		if _, ok := r.g.torrents.Get(ih); ok {
			out = append(out, r)
		}
	}
	return out
}

// TestClusterOfThree: three gateways act as one. A torrent added on any node has one home, the
// only node that fetches it from the native seeder; every node lists it and streams it
// byte-identical; two WebRTC peers whose tracker sockets are on the two other nodes find each
// other and the home's bridge through the home's swarm. When the home stops, another node
// becomes home, fetches it from the seeder, and every node streams it again.
func TestClusterOfThree(t *testing.T) {
	nodes := startCluster(t, "n1", "n2", "n3")
	seeder, err := peertest.NewSeeder(t.TempDir(), "film.mp4", 3<<20, 64<<10, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(seeder.Close)
	ih := seeder.Torrent.InfoHash()

	res := nodes[0].postJSON(t, map[string]string{"magnet": seeder.Magnet()})
	if res.status != http.StatusCreated {
		t.Fatalf("POST on n1: %d %s", res.status, res.body)
	}
	if v := decodeView(t, res.body); v.InfoHash != ih.HexString() {
		t.Fatalf("POST answered %+v", v)
	}
	var home *running
	waitFor(t, 10*time.Second, "one home to hold the torrent", func() bool {
		h := holders(nodes, ih)
		if len(h) == 1 {
			home = h[0]
		}
		return len(h) == 1
	})
	var others []*running
	for _, r := range nodes {
		if r != home {
			others = append(others, r)
			if n := len(r.g.client.Torrents()); n != 0 {
				t.Errorf("%s, not the home, has %d torrents in its client", r.g.cluster.node.Self(), n)
			}
		}
	}
	// Adding again on another node answers 200 from the home, and still one node holds it.
	if res := others[1].postJSON(t, map[string]string{"magnet": seeder.Magnet()}); res.status != http.StatusOK {
		t.Fatalf("second POST: %d %s", res.status, res.body)
	}
	for _, r := range nodes {
		checkClusterServes(t, r, seeder)
		if m := r.get(t, "/metrics", nil); !bytes.Contains(m.body, []byte("swarmgate_cluster_members 3\n")) || !bytes.Contains(m.body, []byte("swarmgate_cluster_torrents 1\n")) {
			t.Errorf("%s's /metrics lacks the cluster's members and catalog", r.g.cluster.node.Self())
		}
	}
	if h := holders(nodes, ih); len(h) != 1 {
		t.Fatalf("%d nodes hold the torrent after streaming from each", len(h))
	}

	// Two peers, each with its tracker socket on one of the nodes that are not home. The second
	// joins once the first is done, so that the home's swarm relays one of its offers to the
	// first (the other goes to the home's bridge); a watcher records the two ever connected.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var peers []*peertest.WebRTCPeer
	var ts []*torrent.Torrent
	var met atomic.Bool
	for i, r := range others {
		p, err := peertest.NewWebRTCPeer(ctx, peertest.PeerOptions{Dir: t.TempDir(), TrackerURL: trackerURL(r), Log: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		tt, err := p.Join(seeder.MetaInfo)
		if err != nil {
			t.Fatal(err)
		}
		peers, ts = append(peers, p), append(ts, tt)
		if i == 1 {
			go func() {
				for ctx.Err() == nil && !met.Load() {
					for _, pc := range tt.PeerConns() {
						if pc.PeerID == peers[0].PeerID() {
							met.Store(true)
						}
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
		select {
		case <-tt.Complete().On():
		case <-ctx.Done():
			t.Fatalf("peer %d did not complete: %d of %d bytes", i, tt.BytesCompleted(), tt.Length())
		}
	}
	waitFor(t, 20*time.Second, "the two peers to have connected to each other across nodes", met.Load)
	if st := home.g.tracker.Stats(); st.RemoteSockets < 2 || st.Peers < 2 {
		t.Errorf("home's tracker: %+v", st)
	}
	for _, r := range others {
		if st := r.g.tracker.Stats(); st.Swarms != 0 || st.Forwarded == 0 {
			t.Errorf("%s's tracker: %+v", r.g.cluster.node.Self(), st)
		}
	}

	// The home goes: another node takes the torrent on and fetches it from the seeder.
	gone := home.g.cluster.node.Self()
	home.stop()
	var newHome *running
	waitFor(t, 20*time.Second, "another node to become home after "+gone+" stopped", func() bool {
		h := holders(others, ih)
		if len(h) == 1 {
			newHome = h[0]
		}
		return len(h) == 1
	})
	for _, r := range others {
		waitFor(t, 10*time.Second, r.g.cluster.node.Self()+" to see "+gone+" gone", func() bool {
			return len(clusterOf(t, r).Members) == 2
		})
	}
	for _, r := range others {
		checkClusterServes(t, r, seeder)
	}
	if h := holders(others, ih); len(h) != 1 || h[0] != newHome {
		t.Fatalf("after failover %d nodes hold the torrent", len(h))
	}
}

// checkClusterServes: r lists the torrent once and streams it byte-identical.
func checkClusterServes(t *testing.T, r *running, seeder *peertest.Seeder) {
	t.Helper()
	name := r.g.cluster.node.Self()
	res := r.get(t, "/api/torrents", nil)
	var list []torrentView
	if err := json.Unmarshal(res.body, &list); err != nil {
		t.Fatalf("%s: list: %v %s", name, err, res.body)
	}
	n := 0
	for _, v := range list {
		if v.InfoHash == seeder.Torrent.InfoHash().HexString() {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%s lists the torrent %d times: %s", name, n, res.body)
	}
	ih := seeder.Torrent.InfoHash().HexString()
	for _, pl := range []string{"/playlist/" + ih + ".m3u", "/playlist/all.m3u"} {
		res := r.get(t, pl, nil)
		if n := strings.Count(string(res.body), "/stream/"+ih+"/0\n"); res.status != http.StatusOK || n != 1 || !strings.HasPrefix(string(res.body), "#EXTM3U\n") {
			t.Errorf("%s: %s lists the file %d times (%d):\n%s", name, pl, n, res.status, res.body)
		}
	}
	res = r.get(t, "/stream/"+ih+"/0", nil)
	if res.status != http.StatusOK || sha256.Sum256(res.body) != seeder.SHA256 {
		t.Fatalf("%s: stream %d, %d bytes, digest right %v", name, res.status, len(res.body), sha256.Sum256(res.body) == seeder.SHA256)
	}
}

// TestClusterConfigErrors: cluster settings are checked up front, in the flags' words.
func TestClusterConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.ClusterListen = "127.0.0.1:6222" }, "ClusterSecret is required"},
		{func(c *Config) { c.ClusterSecret = "s" }, "ClusterSecret is set, but neither"},
		{func(c *Config) { c.ClusterListen, c.ClusterSecret, c.NodeName = "127.0.0.1:6222", "s", "a b" }, `NodeName "a b"`},
		{func(c *Config) { c.ClusterNATS, c.ClusterAdvertise = "nats://h:4222", "ftp://x" }, `ClusterAdvertise "ftp://x"`},
	} {
		c := testConfig(t)
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, want %q", err, tc.want)
		}
	}
}

// TestClusterNodeOwnTorrent: a torrent only one node holds and the catalog does not (the demo)
// is served by that node, whichever node rendezvous names for its infohash.
func TestClusterNodeOwnTorrent(t *testing.T) {
	// Names such that the demo's home by rendezvous is the node without it.
	_, info, err := HashPath(writeTemp(t, demoName, demoVideo), nil)
	if err != nil {
		t.Fatal(err)
	}
	demoIH := metainfo.HashBytes(mustBencode(t, info))
	names := []string{"n1", "n2"}
	for i := 0; cluster.Rendezvous(names, demoIH) != names[1]; i++ {
		names[1] = fmt.Sprintf("n2-%d", i)
	}
	routes := peertest.FreeLoopbackAddrs(t, 2)
	var nodes []*running
	for i, name := range names {
		nodes = append(nodes, startGateway(t, func(c *Config) {
			c.NodeName, c.ClusterListen, c.ClusterRoutes, c.ClusterSecret = name, routes[i], routes, "test-secret"
			c.Demo = i == 0
			c.tuneTorrent = func(tc *torrent.ClientConfig) { tc.DisableUTP = true }
		}))
	}
	for _, r := range nodes {
		waitFor(t, 15*time.Second, "both nodes to see each other", func() bool { return len(clusterOf(t, r).Members) == 2 })
	}
	list := nodes[0].g.torrents.List()
	if len(list) != 1 {
		t.Fatalf("n1 holds %d torrents, want the demo", len(list))
	}
	ih := list[0].Torrent().InfoHash()
	if ih != demoIH || nodes[0].g.cluster.node.Home(ih) != names[1] {
		t.Fatalf("the demo %s is homed on %s; the test wants it on %s", ih, nodes[0].g.cluster.node.Home(ih), names[1])
	}
	if res := nodes[0].get(t, "/api/torrents/"+ih.HexString(), nil); res.status != http.StatusOK {
		t.Fatalf("n1 (home by rendezvous: %s) does not serve its demo: %d %s", nodes[0].g.cluster.node.Home(ih), res.status, res.body)
	}
	if n := len(clusterOf(t, nodes[0]).Members); n != 2 || len(nodes[0].g.cluster.node.Torrents()) != 0 {
		t.Fatalf("the demo went into the catalog: %d", len(nodes[0].g.cluster.node.Torrents()))
	}
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustBencode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := bencode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClusterLiveStream: a live stream lives on its home node. The broadcaster's uploads, made
// to the other node, reach it there; the other node plays it (playlist and segments, proxied)
// and lists it once.
func TestClusterLiveStream(t *testing.T) {
	nodes := startClusterWith(t, func(c *Config) { c.IngestToken = testIngestToken }, "n1", "n2")
	// A stream whose home is n2; the broadcaster talks to n1.
	var priv ed25519.PrivateKey
	var id live.StreamID
	for {
		priv = mustKey(t)
		if id = live.StreamIDOfKey(priv); nodes[0].g.cluster.node.Home(liveKey(id)) == "n2" {
			break
		}
	}
	t0 := time.Now().Add(-time.Minute)
	init := []byte("init segment")
	if res := putSegment(t, nodes[0], id, signSeg(t, priv, live.KindInit, 0, t0, init), init, nil); res.status != http.StatusCreated {
		t.Fatalf("init through n1: %d %s", res.status, res.body)
	}
	media := []byte("media segment 0")
	if res := putSegment(t, nodes[0], id, signSeg(t, priv, live.KindMedia, 0, t0, media), media, nil); res.status != http.StatusCreated {
		t.Fatalf("media through n1: %d %s", res.status, res.body)
	}
	if _, ok := nodes[1].g.live.Status(id, ""); !ok {
		t.Fatal("the stream is not on its home n2")
	}
	if _, ok := nodes[0].g.live.Status(id, ""); ok {
		t.Fatal("n1 took the stream in itself")
	}
	pl := nodes[0].get(t, "/live/"+id.String()+"/index.m3u8", nil)
	if pl.status != http.StatusOK || !strings.Contains(string(pl.body), "\n0.m4s") {
		t.Fatalf("playlist through n1: %d\n%s", pl.status, pl.body)
	}
	if seg := nodes[0].get(t, "/live/"+id.String()+"/0.m4s", nil); seg.status != http.StatusOK || !bytes.Equal(seg.body, media) {
		t.Fatalf("segment through n1: %d %q", seg.status, seg.body)
	}
	for _, r := range nodes {
		var list []live.StreamStatus
		res := r.get(t, "/api/live", nil)
		if err := json.Unmarshal(res.body, &list); err != nil || len(list) != 1 || list[0].Stream != id {
			t.Errorf("%s lists %s (%v)", r.g.cluster.node.Self(), res.body, err)
		}
	}
}
