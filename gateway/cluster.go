package gateway

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/labstack/echo/v4"

	"github.com/swarmgate/swarmgate/cluster"
	"github.com/swarmgate/swarmgate/live"
	"github.com/swarmgate/swarmgate/registry"
	"github.com/swarmgate/swarmgate/signaling"
)

// forwardedHeader marks a request one node proxied to another: it is served where it lands, so
// that two nodes whose views of the members differ for a moment never send it round in circles.
const forwardedHeader = "X-Swarmgate-Forwarded-By"

// rehomeEvery is how often a node looks again at which torrents it should hold: besides
// membership and catalog changes, a torrent handed off waits until nobody here reads it.
const rehomeEvery = 5 * time.Second

// clusterPart is the gateway's side of a cluster (docs/cluster.md). Each torrent has one home
// node (cluster.Node.Home): only the home holds it in its registry and fetches it from the native
// swarm, only the home's tracker holds its swarm (other nodes' sockets reach it over the bus),
// and HTTP requests for it that land on another node are proxied to the home.
//
// Why proxy rather than have every node fetch from the home as a native peer: the home's readers
// then see every viewer's position and fetch ahead for it, the cluster holds one copy of the data
// on disk, and nothing new has to be kept in step; the cost is the home's uplink for HTTP
// viewers, whom WebRTC (browsers and the home's bridge) relieves as on a single gateway.
type clusterPart struct {
	g       *Gateway
	node    *cluster.Node
	bus     *cluster.SignalBus
	tracker atomic.Pointer[signaling.Server]

	mu       sync.Mutex
	members  map[string]bool                   // as last seen, to tell who left
	proxies  map[string]*httputil.ReverseProxy // by member HTTP base URL
	handoffs map[metainfo.Hash]bool            // removed here because their home moved: no tombstone
	wake     chan struct{}                     // a rehome is due
	client   *http.Client                      // for GET /api/torrents across nodes
	relayed  map[live.StreamID]bool            // live streams this node follows by --relay
}

// startCluster joins the cluster the config describes, if any, before the tracker exists (the
// tracker is made with the bus).
func (g *Gateway) startCluster() error {
	cc := g.cfg.clusterConfig()
	if !cc.Enabled() {
		return nil
	}
	cc.Log = g.rootLog
	node, err := cluster.Start(cc)
	if err != nil {
		return &FieldError{Field: "Cluster", Err: err}
	}
	relayed := map[live.StreamID]bool{}
	for _, raw := range g.cfg.Relays {
		if _, id, err := live.ParseStreamURL(raw); err == nil {
			relayed[id] = true
		}
	}
	cp := &clusterPart{
		g:        g,
		relayed:  relayed,
		node:     node,
		members:  map[string]bool{},
		proxies:  map[string]*httputil.ReverseProxy{},
		handoffs: map[metainfo.Hash]bool{},
		wake:     make(chan struct{}, 1),
		client:   &http.Client{Timeout: 5 * time.Second},
	}
	cp.bus, err = node.SignalBus(func(m signaling.BusMessage) {
		if t := cp.tracker.Load(); t != nil {
			t.Deliver(m)
		}
	})
	if err != nil {
		_ = node.Close()
		return err
	}
	g.cluster = cp
	return nil
}

// join makes this node a member once everything is up: its tracker, HTTP listener and torrents.
func (cp *clusterPart) join() {
	g := cp.g
	cp.tracker.Store(g.tracker)
	cp.node.ShareSocketsPerIP(func() map[string]int { return g.tracker.SocketsPerIP(2) })
	cp.node.SetHTTPURL(cp.advertiseURL())
	cp.node.OnChange(cp.membersChanged)
	cp.node.OnTorrent(func(cluster.Torrent) { cp.wakeUp() })
	cp.node.Join()
	g.wg.Add(1)
	go cp.run()
}

// advertiseURL is this node's HTTP base URL for the others: ClusterAdvertise, or the listener's
// address with the host name in place of an all-addresses one.
func (cp *clusterPart) advertiseURL() string {
	if cp.g.cfg.ClusterAdvertise != "" {
		return strings.TrimSuffix(cp.g.cfg.ClusterAdvertise, "/")
	}
	host, port, _ := net.SplitHostPort(cp.g.ln.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

func (cp *clusterPart) close() error {
	if cp.bus != nil {
		_ = cp.bus.Close()
	}
	return cp.node.Close()
}

func (cp *clusterPart) wakeUp() {
	select {
	case cp.wake <- struct{}{}:
	default:
	}
}

// membersChanged tells the tracker which nodes left (their sockets' peers go) and that swarms may
// have new owners, and looks again at which torrents this node holds.
func (cp *clusterPart) membersChanged() {
	now := map[string]bool{}
	for _, m := range cp.node.Members() {
		now[m.Name] = true
	}
	cp.mu.Lock()
	var left []string
	for name := range cp.members {
		if !now[name] {
			left = append(left, name)
		}
	}
	cp.members = now
	cp.mu.Unlock()
	if t := cp.tracker.Load(); t != nil {
		for _, name := range left {
			t.NodeGone(name)
		}
		t.OwnersChanged() // swarms whose home moved follow at once
	}
	cp.wakeUp()
}

func (cp *clusterPart) run() {
	defer cp.g.wg.Done()
	t := time.NewTicker(rehomeEvery)
	defer t.Stop()
	for {
		select {
		case <-cp.g.stop:
			return
		case <-cp.wake:
		case <-t.C:
		}
		cp.rehome()
	}
}

// rehome takes on the catalog's torrents whose home this node is, and hands off those whose
// home moved elsewhere once nobody here reads them.
func (cp *clusterPart) rehome() {
	g, self := cp.g, cp.node.Self()
	for _, ct := range cp.node.Torrents() {
		ih := metainfo.NewHashFromHex(ct.InfoHash)
		e, held := g.torrents.Get(ih)
		home := cp.node.Home(ih)
		switch {
		case home == self && !held:
			if err := cp.adopt(ct); err != nil {
				g.log.Warn("cluster: could not take on a torrent homed here", "infohash", ct.InfoHash, "err", err)
			}
		case home != self && held && e.Source().SeedDir == "" && !e.Watched(time.Now()):
			cp.mu.Lock()
			cp.handoffs[ih] = true
			cp.mu.Unlock()
			g.log.Info("cluster: torrent handed off to its home", "infohash", ct.InfoHash, "home", home)
			if err := g.torrents.Remove(ih, false); err != nil {
				g.log.Warn("cluster: hand-off", "infohash", ct.InfoHash, "err", err)
			}
		}
	}
	// Torrents the catalog removed (on their home, or by an operator elsewhere) go here too.
	for _, e := range g.torrents.List() {
		ih := e.Torrent().InfoHash()
		if ct, ok := cp.node.Torrent(ih.HexString()); ok && ct.Removed && ct.Version > e.Added().UnixNano() {
			cp.mu.Lock()
			cp.handoffs[ih] = true // already in the catalog as removed
			cp.mu.Unlock()
			_ = g.torrents.Remove(ih, false)
		}
	}
}

// adopt adds a catalog torrent here, as its home.
func (cp *clusterPart) adopt(ct cluster.Torrent) error {
	var (
		spec *torrent.TorrentSpec
		err  error
	)
	switch {
	case len(ct.Metainfo) > 0:
		spec, err = metainfoSpec(ct.Metainfo)
	case ct.Magnet != "":
		spec, err = magnetSpec(ct.Magnet)
	default:
		spec, err = infoHashSpec(ct.InfoHash)
	}
	if err != nil {
		return err
	}
	// The catalog's version as the add time: the Added hook then finds nothing new to tell.
	src := registry.Source{Magnet: ct.Magnet, FetchAll: ct.FetchAll, Added: time.Unix(0, ct.Version).UTC()}
	cp.g.log.Info("cluster: taking on a torrent homed here", "infohash", ct.InfoHash)
	_, _, err = cp.g.addSpec(spec, src)
	return err
}

// added puts a torrent this node took on in the catalog. The version is the add time (kept
// across restarts), so that a restarted node's old torrents do not undo removals made while it
// was away.
func (cp *clusterPart) added(e *registry.Entry) {
	src := e.Source()
	if src.Ephemeral {
		return
	}
	ct := cluster.Torrent{InfoHash: e.Torrent().InfoHash().HexString(), Magnet: src.Magnet, FetchAll: src.FetchAll,
		Version: e.Added().UnixNano()}
	if src.SeedDir != "" {
		ct.Pinned = cp.node.Self()
	}
	if src.Magnet == "" && e.Torrent().Info() != nil {
		mi := e.Torrent().Metainfo()
		if b, err := bencode.Marshal(mi); err == nil {
			ct.Metainfo = b
		}
	}
	cp.node.PutTorrent(ct)
}

// removed puts a removal in the catalog, unless the torrent only moved to its home.
func (cp *clusterPart) removed(e *registry.Entry) {
	ih := e.Torrent().InfoHash()
	cp.mu.Lock()
	handoff := cp.handoffs[ih]
	delete(cp.handoffs, ih)
	cp.mu.Unlock()
	if handoff || e.Source().Ephemeral {
		return
	}
	cp.node.PutTorrent(cluster.Torrent{InfoHash: ih.HexString(), Removed: true})
}

// homeElsewhere is the member that is the home of ih when that is not this node and the request
// was not proxied here already.
func (cp *clusterPart) homeElsewhere(c echo.Context, ih metainfo.Hash) (cluster.Member, bool) {
	if c.Request().Header.Get(forwardedHeader) != "" {
		return cluster.Member{}, false
	}
	home := cp.node.Home(ih)
	if home == cp.node.Self() {
		return cluster.Member{}, false
	}
	m, ok := cp.node.Member(home)
	return m, ok && m.HTTPURL != ""
}

// toHome is the middleware of a torrent's own routes (:ih): in a cluster, a request for a
// torrent homed on another node is proxied there; alone, none.
func (g *Gateway) toHome() []echo.MiddlewareFunc {
	if g.cluster == nil {
		return nil
	}
	return []echo.MiddlewareFunc{g.cluster.toHome}
}

// toPlaylistHome is toHome for /playlist/<infohash>.m3u.
func (g *Gateway) toPlaylistHome() []echo.MiddlewareFunc {
	if g.cluster == nil {
		return nil
	}
	return []echo.MiddlewareFunc{func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			name, _ := strings.CutSuffix(c.Param("name"), ".m3u")
			ih, err := parseInfoHash(name)
			if err != nil {
				return next(c) // all.m3u (gathered by the handler), or the handler's error
			}
			return g.cluster.serveAtHome(c, ih, next)
		}
	}}
}

// otherPlaylists appends the other members' all-torrents playlists (their entries, without the
// #EXTM3U header) to b; a member that does not answer is left out, with a warning.
func (cp *clusterPart) otherPlaylists(c echo.Context, b *strings.Builder) {
	if c.Request().Header.Get(forwardedHeader) != "" {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	for _, m := range cp.node.Members() {
		if m.Name == cp.node.Self() || m.HTTPURL == "" {
			continue
		}
		body, err := cp.fetch(ctx, c, m, "/playlist/"+allPlaylist+".m3u")
		if err != nil {
			cp.g.log.Warn("cluster: a node's part is missing from a list", "member", m.Name, "path", "/playlist", "err", err)
			continue
		}
		b.WriteString(strings.TrimPrefix(string(body), "#EXTM3U\n"))
	}
}

// toHome proxies a request for a torrent (:ih) homed on another node there.
func (cp *clusterPart) toHome(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ih, err := parseInfoHash(c.Param("ih"))
		if err != nil {
			return next(c) // the handler says what is wrong
		}
		return cp.serveAtHome(c, ih, next)
	}
}

// serveAtHome serves c with next when this node is ih's home (or holds it outside the catalog),
// and proxies it to the home otherwise.
func (cp *clusterPart) serveAtHome(c echo.Context, ih metainfo.Hash, next echo.HandlerFunc) error {
	if _, held := cp.g.torrents.Get(ih); held {
		if _, shared := cp.node.Torrent(ih.HexString()); !shared {
			return next(c) // this node's own (the demo): not in the catalog, served here
		}
	}
	if m, ok := cp.homeElsewhere(c, ih); ok {
		cp.proxy(c, m)
		return nil
	}
	return next(c)
}

// liveKey is a live stream's rendezvous key: its id hashed, apart from infohashes.
func liveKey(id live.StreamID) [20]byte {
	return sha1.Sum(append([]byte("swarmgate live stream "), id[:]...))
}

// toLiveHome is the middleware of the live routes: in a cluster, a live stream lives on one node,
// its home by rendezvous over its id. The broadcaster's uploads, wherever they land, reach it
// there, and so do players' reads, proxied like a torrent's; a stream this node relays by
// --relay is served here. Alone, none.
func (g *Gateway) toLiveHome() []echo.MiddlewareFunc {
	if g.cluster == nil {
		return nil
	}
	return []echo.MiddlewareFunc{g.cluster.toLiveHome}
}

func (cp *clusterPart) toLiveHome(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		raw := c.Param("stream")
		if raw == "" {
			raw, _, _ = strings.Cut(c.Param("*"), "/")
		}
		id, err := live.ParseStreamID(raw)
		if err != nil || cp.relayed[id] || c.Request().Header.Get(forwardedHeader) != "" {
			return next(c)
		}
		home := cp.node.Home(liveKey(id))
		if home == cp.node.Self() {
			return next(c)
		}
		m, ok := cp.node.Member(home)
		if !ok || m.HTTPURL == "" {
			return next(c)
		}
		cp.proxy(c, m)
		return nil
	}
}

// proxy sends c's request to member m and streams the answer back.
func (cp *clusterPart) proxy(c echo.Context, m cluster.Member) {
	cp.mu.Lock()
	p := cp.proxies[m.HTTPURL]
	if p == nil {
		target, err := url.Parse(m.HTTPURL)
		if err != nil {
			cp.mu.Unlock()
			writeJSONError(c.Response(), http.StatusBadGateway, fmt.Sprintf("home node %s has a bad URL %q", m.Name, m.HTTPURL))
			return
		}
		self, name := cp.node.Self(), m.Name
		p = &httputil.ReverseProxy{
			Rewrite: func(r *httputil.ProxyRequest) {
				r.SetURL(target)
				r.Out.Host = r.In.Host // the home builds its URLs from the viewer's host
				r.Out.Header.Set(forwardedHeader, self)
			},
			FlushInterval: -1, // streams flow as they come
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				if r.Context().Err() != nil {
					return // the viewer went away
				}
				// Most often the home just went: the cluster notices within seconds and another
				// node takes the torrent on, so this is worth a retry.
				w.Header().Set("Retry-After", "2")
				writeJSONError(w, http.StatusServiceUnavailable, fmt.Sprintf("this torrent's home node %s did not answer (retry shortly): %v", name, err))
			},
		}
		cp.proxies[m.HTTPURL] = p
	}
	cp.mu.Unlock()
	p.ServeHTTP(c.Response(), c.Request())
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// proxyAdd sends an add whose torrent is homed on another node there, with the body as read.
func (cp *clusterPart) proxyAdd(c echo.Context, ih metainfo.Hash, body []byte) bool {
	m, ok := cp.homeElsewhere(c, ih)
	if !ok {
		return false
	}
	req := c.Request()
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	cp.proxy(c, m)
	return true
}

// gatherLists adds to local what every other member answers to GET path (a JSON array of what
// it holds itself: the forwarded header keeps it from gathering in turn). A member that does not
// answer within 3 s is left out, with a warning.
func gatherLists[T any](cp *clusterPart, c echo.Context, path string, local []T) []T {
	if c.Request().Header.Get(forwardedHeader) != "" {
		return local
	}
	var wg sync.WaitGroup
	results := make(chan []T, 8)
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	for _, m := range cp.node.Members() {
		if m.Name == cp.node.Self() || m.HTTPURL == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var list []T
			if err := cp.fetchJSON(ctx, c, m, path, &list); err != nil {
				cp.g.log.Warn("cluster: a node's part is missing from a list", "member", m.Name, "path", path, "err", err)
				return
			}
			results <- list
		}()
	}
	go func() { wg.Wait(); close(results) }()
	out := local
	for list := range results {
		out = append(out, list...)
	}
	return out
}

// fetch gets path from member m as c's viewer would (same host), marked as forwarded.
func (cp *clusterPart) fetch(ctx context.Context, c echo.Context, m cluster.Member, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.HTTPURL+path, nil)
	if err != nil {
		return nil, err
	}
	req.Host = c.Request().Host
	req.Header.Set(forwardedHeader, cp.node.Self())
	resp, err := cp.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

// fetchJSON is fetch of a JSON answer into v.
func (cp *clusterPart) fetchJSON(ctx context.Context, c echo.Context, m cluster.Member, path string, v any) error {
	body, err := cp.fetch(ctx, c, m, path)
	if err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}

// listLive answers GET /api/live in a cluster: every node's streams (each held by its home).
func (g *Gateway) listLive(c echo.Context) error {
	base := g.baseURL(c)
	return c.JSON(http.StatusOK, gatherLists(g.cluster, c, "/api/live", g.live.Statuses(base)))
}

// clusterView is GET /api/cluster.
type clusterView struct {
	Node     string          `json:"node"`
	Members  []clusterMember `json:"members"`
	Torrents int             `json:"torrents"` // in the catalog
	Held     int             `json:"held"`     // held here, as their home
}

type clusterMember struct {
	Name    string    `json:"name"`
	HTTPURL string    `json:"http_url"`
	Since   time.Time `json:"since"`
}

func (g *Gateway) getCluster(c echo.Context) error {
	if g.cluster == nil {
		return echo.NewHTTPError(http.StatusNotFound, "this gateway runs alone: no cluster settings (--cluster-listen or --cluster-nats)")
	}
	v := clusterView{Node: g.cluster.node.Self(), Torrents: len(g.cluster.node.Torrents()), Held: g.torrents.Len()}
	for _, m := range g.cluster.node.Members() {
		v.Members = append(v.Members, clusterMember{Name: m.Name, HTTPURL: m.HTTPURL, Since: m.Since})
	}
	return c.JSON(http.StatusOK, v)
}

// TrackerStats is the gateway's tracker's sizes and counters (for tests and tools).
func (g *Gateway) TrackerStats() signaling.Stats { return g.tracker.Stats() }
