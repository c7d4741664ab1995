package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/gateway"
	"github.com/swarmgate/swarmgate/internal/gatewaytest"
	"github.com/swarmgate/swarmgate/internal/peertest"
)

// clusterNode is one gateway of a test cluster, with what it takes to start it again.
type clusterNode struct {
	name    string
	srv     *gatewaytest.Server
	dataDir string
	cfg     func(*gateway.Config)
}

// startClusterNodes starts n gateways on loopback joined by embedded NATS, waiting until each
// sees all of them.
func startClusterNodes(t *testing.T, n int) []*clusterNode {
	t.Helper()
	routes := peertest.FreeLoopbackAddrs(t, n)
	var nodes []*clusterNode
	for i := range n {
		node := &clusterNode{name: fmt.Sprintf("gw%d", i+1), dataDir: t.TempDir()}
		node.cfg = func(c *gateway.Config) {
			c.DataDir = node.dataDir
			c.NodeName, c.ClusterListen, c.ClusterRoutes, c.ClusterSecret = node.name, routes[i], routes, "e2e-secret"
		}
		node.start(t)
		nodes = append(nodes, node)
	}
	for _, node := range nodes {
		node.waitMembers(t, n)
	}
	return nodes
}

func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	n.srv = startGateway(t, n.cfg)
}

// kill stops the node at once (no drain): its sockets drop, its listeners close.
func (n *clusterNode) kill(t *testing.T) {
	t.Helper()
	if err := n.srv.Gateway.Close(); err != nil {
		t.Logf("%s: close: %v", n.name, err)
	}
}

type clusterInfo struct {
	Node    string `json:"node"`
	Members []struct {
		Name string `json:"name"`
	} `json:"members"`
	Held int `json:"held"`
}

func (n *clusterNode) info(t *testing.T) clusterInfo {
	t.Helper()
	var v clusterInfo
	res, err := http.Get(n.srv.URL + "/api/cluster")
	if err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		t.Fatalf("%s: /api/cluster: %v", n.name, err)
	}
	return v
}

func (n *clusterNode) waitMembers(t *testing.T, want int) {
	t.Helper()
	waitUntil(t, 20*time.Second, n.name+" to see the cluster's members", func() (bool, string) {
		got := len(n.info(t).Members)
		return got == want, fmt.Sprintf("%d members, want %d", got, want)
	})
}

// startNginx runs Debian's nginx as a round-robin load balancer in front of upstreams (HTTP and
// websockets alike) with the proxy settings of docs/nginx/swarmgate-proxy.conf, as
// docker-compose.cluster.yml does, and returns its base URL.
func startNginx(t *testing.T, upstreams []string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, err := os.Stat(bin); err != nil {
			missingTool(t, "nginx", "apt-get install nginx")
		}
	}
	dir := t.TempDir()
	listen := peertest.FreeLoopbackAddrs(t, 1)[0]
	// The proxy settings the docs ship (docker-compose.cluster.yml mounts the same file).
	proxyConf, err := filepath.Abs("../docs/nginx/swarmgate-proxy.conf")
	if err != nil {
		t.Fatal(err)
	}
	var servers strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&servers, "    server %s max_fails=1 fail_timeout=2s;\n", strings.TrimPrefix(u, "http://"))
	}
	// One process in the foreground: killing it leaves no worker behind holding the test's output.
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream swarmgate {
%[2]s  }
  server {
    listen %[3]s;
    client_max_body_size 16m;
    location / {
      include %[4]s;
    }
  }
}
`, dir, servers.String(), listen, proxyConf)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("nginx: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "error.log")); err == nil && len(b) > 0 {
				t.Logf("nginx error log:\n%s", b)
			}
		}
	})
	base := "http://" + listen
	waitUntil(t, 10*time.Second, "nginx to answer", func() (bool, string) {
		res, err := http.Get(base + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK, res.Status
	})
	return base
}

// startClusterBehindNginx starts three gateways as a cluster and nginx round-robin in front of
// them, for tests with browsers (which need a default route to connect to each other).
func startClusterBehindNginx(t *testing.T) ([]*clusterNode, string) {
	t.Helper()
	needDefaultRoute(t)
	// Runs last: nginx keeps the idle keep-alive connections of http.Get open.
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	nodes := startClusterNodes(t, 3)
	var upstreams []string
	for _, n := range nodes {
		upstreams = append(upstreams, n.srv.URL)
	}
	return nodes, startNginx(t, upstreams)
}

// homeOf is the node that holds (is home of) the test's only torrent.
func homeOf(t *testing.T, within time.Duration, nodes []*clusterNode) *clusterNode {
	t.Helper()
	var home *clusterNode
	waitUntil(t, within, "one node to hold the torrent", func() (bool, string) {
		var holders []string
		home = nil
		for _, n := range nodes {
			if n.info(t).Held == 1 {
				holders = append(holders, n.name)
				home = n
			}
		}
		return len(holders) == 1, fmt.Sprintf("held by %v", holders)
	})
	return home
}

func streamSum(t *testing.T, base, ih string) [32]byte {
	t.Helper()
	res, err := http.Get(base + "/stream/" + ih + "/0")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, res.Body); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("stream through the load balancer: %s, %v", res.Status, err)
	}
	return [32]byte(h.Sum(nil))
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// trackerSockets is each node's count of open tracker websockets.
func trackerSockets(nodes []*clusterNode) map[string]int {
	m := map[string]int{}
	for _, n := range nodes {
		m[n.name] = n.srv.Gateway.TrackerStats().Sockets
	}
	return m
}

// socketGainedOn is the first node holding more tracker websockets than before, or nil.
func socketGainedOn(nodes []*clusterNode, before map[string]int) *clusterNode {
	for _, n := range nodes {
		if n.srv.Gateway.TrackerStats().Sockets > before[n.name] {
			return n
		}
	}
	return nil
}

// watchAwayFrom opens the watch page at url in a fresh browser until its tracker websocket lands
// on a node other than avoid (nginx picks round-robin), and returns that browser and node. A
// browser whose socket landed on avoid is closed, and its socket waited out, before the next:
// a page reload or about:blank left the old socket open past 10 s under load, which hid where
// the new one went.
func watchAwayFrom(t *testing.T, nodes []*clusterNode, avoid *clusterNode, url string) (*browser, *clusterNode) {
	t.Helper()
	for attempt := 0; attempt < 6; attempt++ {
		before := trackerSockets(nodes)
		b := startBrowser(t, browserOptions{name: "viewer"})
		b.navigate(url)
		b.waitView(45*time.Second, nil, "the page plays through nginx", playingCond(t))
		var holder *clusterNode
		waitUntil(t, 20*time.Second, "the browser's socket to show on a node", func() (bool, string) {
			holder = socketGainedOn(nodes, before)
			return holder != nil, fmt.Sprintf("sockets %v, before %v", trackerSockets(nodes), before)
		})
		if holder != avoid {
			return b, holder
		}
		b.stop()
		waitUntil(t, 10*time.Second, "the browser's socket to close", func() (bool, string) {
			n := avoid.srv.Gateway.TrackerStats().Sockets
			return n <= before[avoid.name], fmt.Sprintf("%d sockets on %s, %d before", n, avoid.name, before[avoid.name])
		})
	}
	t.Fatalf("the browser's websocket never landed on a node other than %s", avoid.name)
	return nil, nil
}

// TestClusterBehindNginx is issue 13's run-for-real: three gateways as one behind Debian's nginx
// (round-robin), a native seeder, and peers whose tracker websockets land on different nodes.
//
//   - The torrent added through nginx has one home; only the home downloads from the seeder.
//   - Two WebRTC peers whose sockets are on different nodes trade with each other.
//   - A browser plays the watch page through nginx; the node holding its websocket is killed: it
//     plays on (its wires to the home and its webseed through nginx do not depend on that socket).
//   - The home is killed: the last node takes the torrent on, fetches it from the seeder, and
//     streams it byte-identical; the browser plays on.
//   - The first home restarts with its data dir: it rejoins and holds the torrent again without
//     fetching it anew.
func TestClusterBehindNginx(t *testing.T) {
	nodes, lb := startClusterBehindNginx(t)
	path := testMedia(t, "test-h264.mp4")
	seeder := seedFile(t, path, 64<<10)
	want := fileSum(t, path)

	// Who the seeder uploads to, the whole test long.
	var seenMu sync.Mutex
	seen := map[[20]byte]bool{}
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			for _, pc := range seeder.Torrent.PeerConns() {
				seenMu.Lock()
				seen[pc.PeerID] = true
				seenMu.Unlock()
			}
			select {
			case <-stopWatch:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stopWatch); <-watched }()

	v := addMagnet(t, lb, seeder.Magnet())
	mi := fetchMetainfo(t, lb, v.InfoHash)
	home := homeOf(t, 20*time.Second, nodes)
	t.Logf("home of %s: %s", v.InfoHash, home.name)
	if got := streamSum(t, lb, v.InfoHash); got != want {
		t.Fatal("the stream through nginx is not the file")
	}

	// Two peers on different nodes trade with each other.
	peerNode := func(before map[string]int) string {
		if n := socketGainedOn(nodes, before); n != nil {
			return n.name
		}
		return ""
	}
	var peers []*peertest.WebRTCPeer
	var onNode []string
	for len(peers) < 2 {
		if len(onNode) > 8 {
			t.Fatalf("nginx sent every peer socket to the same node: %v", onNode)
		}
		before := trackerSockets(nodes)
		p, err := peertest.NewWebRTCPeer(t.Context(), peertest.PeerOptions{Dir: t.TempDir(), TrackerURL: gateway.TrackerURL(lb), Log: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		var node string
		waitUntil(t, 5*time.Second, "the peer's socket to show on a node", func() (bool, string) {
			node = peerNode(before)
			return node != "", "not yet"
		})
		onNode = append(onNode, node)
		if len(peers) == 1 && node == onNode[0] {
			p.Close() // same node as the first: try again
			continue
		}
		t.Cleanup(p.Close)
		peers = append(peers, p)
	}
	t.Logf("peer sockets on %v", onNode)
	// The second joins once the first is done: the home's swarm relays one of its offers to the
	// first (the other goes to the home's bridge). Seeders drop each other, so a watcher records
	// the two connected while the second fetches.
	var met atomic.Bool
	for i, p := range peers {
		tt, err := p.Join(mi)
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			go func() {
				for !tt.Complete().Bool() && !met.Load() {
					for _, pc := range tt.PeerConns() {
						if pc.PeerID == peers[0].PeerID() {
							met.Store(true)
						}
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
		waitUntil(t, 60*time.Second, "the peer to complete", func() (bool, string) {
			return tt.Complete().Bool(), fmt.Sprintf("%d of %d bytes", tt.BytesCompleted(), tt.Length())
		})
	}
	if !met.Load() {
		t.Error("the peers on two nodes never connected to each other")
	}
	for _, p := range peers {
		p.Close()
	}
	waitUntil(t, 10*time.Second, "the peers' sockets to close", func() (bool, string) {
		m := trackerSockets(nodes)
		return m["gw1"]+m["gw2"]+m["gw3"] == 0, fmt.Sprint(m)
	})
	homeID := home.srv.Gateway.Client().PeerID()
	seenMu.Lock()
	for id := range seen {
		if id != homeID {
			t.Errorf("the seeder uploaded to %x, not the home %s (%x)", id, home.name, homeID)
		}
	}
	seenMu.Unlock()

	// A browser through nginx; the node holding its websocket goes.
	b, sockNode := watchAwayFrom(t, nodes, home, lb+"/watch/"+v.InfoHash+"?file=0")
	pv := b.waitView(30*time.Second, nil, "the video passes 1 s", advancedCond(t, 1))
	t.Logf("browser socket on %s; killing it at %.1f s of video", sockNode.name, pv.Video.CurrentTime)
	sockNode.kill(t)
	var alive []*clusterNode
	for _, n := range nodes {
		if n != sockNode {
			alive = append(alive, n)
		}
	}
	// Playback does not wait for the tracker socket to come back (the page reopens it within
	// seconds, TestClusterBrowserRejoinsTracker): its WebRTC wires (to the home's bridge) and its
	// webseed (through nginx) stay up.
	pv = b.waitView(30*time.Second, nil, "the video plays on after its socket's node went", advancedCond(t, pv.Video.CurrentTime+2))

	// The home goes: the last node takes the torrent on.
	t.Logf("killing the home %s at %.1f s of video", home.name, pv.Video.CurrentTime)
	home.kill(t)
	var last *clusterNode
	for _, n := range alive {
		if n != home {
			last = n
		}
	}
	last.waitMembers(t, 1)
	if h := homeOf(t, 20*time.Second, []*clusterNode{last}); h != last {
		t.Fatal("the last node did not become home")
	}
	if got := streamSum(t, lb, v.InfoHash); got != want {
		t.Fatal("after failover the stream through nginx is not the file")
	}
	b.waitView(30*time.Second, nil, "the video plays on after the home went", advancedCond(t, pv.Video.CurrentTime+2))

	// The first home restarts on its data dir and rejoins.
	home.start(t)
	home.waitMembers(t, 2)
	last.waitMembers(t, 2)
	// Homes follow rendezvous: the restarted node is home again, and the other hands the torrent
	// back once nobody reads it there (ViewerLinger after the browser's last request).
	b.stop()
	if h := homeOf(t, 90*time.Second, []*clusterNode{home, last}); h != home {
		t.Fatalf("after %s restarted, the home is %s", home.name, h.name)
	}
	if got := streamSum(t, lb, v.InfoHash); got != want {
		t.Fatal("after the restart the stream through nginx is not the file")
	}
	if got := getTorrent(t, home.srv.URL, v.InfoHash); got.Bytes.FromNative != 0 || got.Bytes.FromWebRTC != 0 {
		t.Errorf("the restarted home fetched the torrent anew: %+v", got.Bytes)
	}
}
