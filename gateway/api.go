package gateway

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anacrolix/dht/v2"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/swarmgate/swarmgate/registry"
	"github.com/swarmgate/swarmgate/signaling"
)

func (g *Gateway) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = g.errorHandler
	e.Use(g.accessLog)
	e.Use(g.metrics.middleware)
	e.Use(middleware.Recover())
	// Browsers fetch webseed ranges and streams cross-origin (embeds, other players); webtorrent
	// sends range, cache-control and user-agent headers.
	e.Use(middleware.CORSWithConfig(g.corsConfig()))

	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", g.ready)
	if g.metricsLn == nil { // else served on its own listener
		e.GET("/metrics", g.metrics.handler())
	}
	e.GET("/announce", echo.WrapHandler(g.tracker))
	e.GET("/api/config", g.getConfig)
	e.GET("/api/torrents", g.listTorrents)
	e.POST("/api/torrents", g.postTorrent)
	toHome := g.toHome()
	e.GET("/api/cluster", g.getCluster)
	e.GET("/api/torrents/:ih", g.getTorrent, toHome...)
	e.DELETE("/api/torrents/:ih", g.deleteTorrent, toHome...)
	e.GET("/api/torrents/:ih/metainfo", g.getMetainfo, toHome...)
	e.GET("/stream/:ih/:file", g.stream, toHome...)
	e.HEAD("/stream/:ih/:file", g.stream, toHome...)
	e.GET("/webseed/:ih/*", g.webseed, toHome...)
	e.HEAD("/webseed/:ih/*", g.webseed, toHome...)
	e.GET("/playlist/:name", g.playlist, g.toPlaylistHome()...)
	e.GET("/hls/:ih/:file/:variant/:name", g.hls, toHome...)
	g.liveRoutes(e)
	g.pageRoutes(e)
	return e
}

// corsConfig allows any origin to read (GET, HEAD) by default. Listed origins (--cors-origins)
// are the only ones allowed, and may also add and delete with an Authorization header: an admin
// page elsewhere needs that, while "*" with credentials would hand the API to any site.
func (g *Gateway) corsConfig() middleware.CORSConfig {
	cc := middleware.CORSConfig{
		AllowOrigins:  []string{"*"},
		AllowMethods:  []string{http.MethodGet, http.MethodHead, http.MethodOptions},
		AllowHeaders:  []string{"Range", "Cache-Control", "User-Agent", "Content-Type"},
		ExposeHeaders: []string{"Content-Range", "Content-Length", "Accept-Ranges"},
		MaxAge:        86400,
	}
	var origins []string
	for _, o := range g.cfg.CORSOrigins {
		if o == "*" {
			return cc
		}
		origins = append(origins, o)
	}
	if len(origins) > 0 {
		cc.AllowOrigins = origins
		cc.AllowMethods = append(cc.AllowMethods, http.MethodPost, http.MethodDelete)
		cc.AllowHeaders = append(cc.AllowHeaders, echo.HeaderAuthorization)
		cc.ExposeHeaders = append(cc.ExposeHeaders, "Retry-After", echo.HeaderWWWAuthenticate)
	}
	return cc
}

// ready says whether to send viewers here: not while draining for shutdown.
func (g *Gateway) ready(c echo.Context) error {
	if g.draining.Load() {
		return c.JSON(http.StatusServiceUnavailable, apiError{Error: "shutting down"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// apiError is the one shape every error answer has.
type apiError struct {
	Error string `json:"error"`
}

func (g *Gateway) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code := http.StatusInternalServerError
	msg := err.Error()
	var he *echo.HTTPError
	switch {
	case errors.As(err, &he):
		code = he.Code
		msg = fmt.Sprint(he.Message)
		if he.Internal != nil {
			msg += ": " + he.Internal.Error()
		}
	case errors.Is(err, ErrBadInput):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, ErrMetadataPending):
		code = http.StatusServiceUnavailable
		c.Response().Header().Set("Retry-After", "2")
	case errors.Is(err, ErrUnauthorized):
		code = http.StatusUnauthorized
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="swarmgate"`)
	case errors.Is(err, ErrForbidden):
		code = http.StatusForbidden
	case errors.Is(err, ErrLimit):
		code = http.StatusServiceUnavailable
		c.Response().Header().Set("Retry-After", "60")
	case errors.Is(err, ErrClosed):
		code = http.StatusServiceUnavailable
	case errors.Is(err, ErrUnavailable):
		code = http.StatusServiceUnavailable
		c.Response().Header().Set("Retry-After", "5")
	}
	if code >= 500 && !errors.Is(err, ErrMetadataPending) && !errors.Is(err, ErrLimit) {
		g.log.Error("request failed", "path", c.Request().URL.Path, "err", err)
	}
	if c.Request().Method == http.MethodHead {
		c.NoContent(code)
		return
	}
	c.JSON(code, apiError{Error: g.redactOwn(msg)})
}

// baseURL is where viewers reach this gateway: the configured public URL, or the request's own.
func (g *Gateway) baseURL(c echo.Context) string {
	if g.cfg.PublicURL != "" {
		return strings.TrimSuffix(g.cfg.PublicURL, "/")
	}
	return c.Scheme() + "://" + c.Request().Host
}

// TrackerURL is the websocket tracker URL of a gateway reached at base (http→ws, https→wss).
func TrackerURL(base string) string {
	if rest, ok := strings.CutPrefix(base, "https://"); ok {
		return "wss://" + rest + "/announce"
	}
	return "ws://" + strings.TrimPrefix(base, "http://") + "/announce"
}

// clientConfig is what a browser page needs to join: the tracker and the ICE servers to use.
type clientConfig struct {
	TrackerURL string      `json:"tracker_url"`
	ICEServers []ICEServer `json:"ice_servers"`
	// PeerID is the gateway's BitTorrent peer id (hex), so pages can tell its wire from browsers'.
	// PeerIDPrefix (hex) starts every swarmgate gateway's peer id: a restarted gateway, or
	// another node of a cluster, has another id but the same prefix.
	PeerID       string `json:"peer_id"`
	PeerIDPrefix string `json:"peer_id_prefix"`
	// Transcode is what HLS the gateway makes for browsers that cannot play a file as it is:
	// "on" (remux and transcode), "remux" or "off".
	Transcode string `json:"transcode"`
}

func (g *Gateway) getConfig(c echo.Context) error {
	return c.JSON(http.StatusOK, g.clientConfig(g.baseURL(c)))
}

func (g *Gateway) clientConfig(base string) clientConfig {
	ice := g.cfg.ICEServers
	if ice == nil {
		ice = []ICEServer{}
	}
	return clientConfig{TrackerURL: TrackerURL(base), ICEServers: ice, PeerID: g.peerID.String(),
		PeerIDPrefix: hex.EncodeToString([]byte(peerIDPrefix)), Transcode: g.transcodePolicy()}
}

type swarmView struct {
	Peers      int   `json:"peers"`
	Seeders    int   `json:"seeders"`
	Uploaded   int64 `json:"uploaded"`
	Downloaded int64 `json:"downloaded"`
}

type fileView struct {
	Index     int    `json:"index"`
	Path      string `json:"path"`
	Length    int64  `json:"length"`
	MIME      string `json:"mime"`
	StreamURL string `json:"stream_url"`
	WatchURL  string `json:"watch_url"`
	// Media is what a video or audio file holds (GET /api/torrents/{ih} only; absent when
	// probing is off).
	Media *mediaView `json:"media,omitempty"`
}

type torrentView struct {
	InfoHash    string              `json:"infohash"`
	Name        string              `json:"name"`
	State       string              `json:"state"`
	Length      int64               `json:"length"`
	PieceLength int64               `json:"piece_length"`
	Pieces      int                 `json:"pieces"`
	Progress    float64             `json:"progress"`
	Files       []fileView          `json:"files"`
	Peers       registry.PeerCounts `json:"peers"`
	Rates       registry.Rates      `json:"rates"`
	Bytes       registry.ByteCounts `json:"bytes"`
	// Browsers is the tracker's view of the torrent's WebRTC swarm, as its peers report it: how
	// much they downloaded and uploaded in all (to each other included), which the gateway does
	// not see otherwise.
	Browsers    swarmView `json:"browsers"`
	Magnet      string    `json:"magnet"`
	MetainfoURL string    `json:"metainfo_url"`
	// PeerSearch says what the gateway does to find peers while the metadata is awaited (state
	// "metadata"), so that a page can show more than "waiting".
	PeerSearch *peerSearch `json:"peer_search,omitempty"`
	// Error is the last disk write that failed (disk full, cache full, I/O error), until a write
	// succeeds; downloading pauses meanwhile.
	Error string `json:"error,omitempty"`
}

// peerSearch is how a torrent's search for peers goes: the numbers a person needs to tell "no
// one has it" from "this gateway cannot look" (no DHT, no trackers).
type peerSearch struct {
	Seconds    int64 `json:"seconds"`     // since this run added the torrent
	Known      int   `json:"known_peers"` // addresses from trackers, the DHT, a magnet's x.pe, browsers
	Connecting int   `json:"connecting"`  // dials under way
	Connected  int   `json:"connected"`   // peers connected, native and WebRTC
	Trackers   int   `json:"trackers"`    // the torrent's own trackers (a magnet's tr=)
	DHT        bool  `json:"dht"`         // whether the gateway searches the DHT
	DHTNodes   int   `json:"dht_nodes"`   // good nodes in its DHT routing tables
	Browsers   int   `json:"browsers"`    // browsers in the gateway's tracker's swarm
}

func (g *Gateway) peerSearch(e *registry.Entry) *peerSearch {
	t := e.Torrent()
	st := t.Stats()
	ps := &peerSearch{
		Seconds:    int64(time.Since(e.Loaded()).Seconds()),
		Known:      st.TotalPeers,
		Connecting: st.HalfOpenPeers,
		Connected:  len(t.PeerConns()),
		DHT:        !g.cfg.NoDHT,
		Browsers:   g.tracker.SwarmStats(signaling.ID(t.InfoHash())).Peers,
	}
	mi := t.Metainfo()
	for _, tier := range mi.UpvertedAnnounceList() {
		ps.Trackers += len(tier)
	}
	for _, s := range g.client.DhtServers() {
		if ss, ok := s.Stats().(dht.ServerStats); ok {
			ps.DHTNodes += ss.GoodNodes
		}
	}
	return ps
}

func (g *Gateway) view(e *registry.Entry, base string) torrentView {
	t := e.Torrent()
	ih := t.InfoHash().HexString()
	v := torrentView{
		InfoHash:    ih,
		Name:        t.Name(),
		State:       registry.StateMetadata,
		Files:       []fileView{},
		Rates:       e.Rates(),
		MetainfoURL: base + "/api/torrents/" + ih + "/metainfo",
		Error:       e.DiskError(),
	}
	v.Bytes, v.Peers = e.Counts()
	sw := g.tracker.SwarmStats(signaling.ID(t.InfoHash()))
	v.Browsers = swarmView{Peers: sw.Peers, Seeders: sw.Seeders, Uploaded: sw.Uploaded, Downloaded: sw.Downloaded}
	var info *metainfo.Info
	if registry.HasInfo(t) {
		info = t.Info()
	}
	ihv := t.InfoHash()
	m := t.Metainfo().Magnet(&ihv, info)
	m.Trackers = []string{TrackerURL(base)}
	m.Params = map[string][]string{"ws": {base + "/webseed/" + ih + "/"}}
	v.Magnet = m.String()
	if info == nil {
		v.PeerSearch = g.peerSearch(e)
		return v
	}
	v.Length = info.TotalLength()
	v.PieceLength = info.PieceLength
	v.Pieces = info.NumPieces()
	if v.Length > 0 {
		v.Progress = float64(t.BytesCompleted()) / float64(v.Length)
	}
	v.State = e.State()
	for i, f := range t.Files() {
		v.Files = append(v.Files, fileView{
			Index:     i,
			Path:      f.DisplayPath(),
			Length:    f.Length(),
			MIME:      mimeType(f.DisplayPath()),
			StreamURL: fmt.Sprintf("%s/stream/%s/%d", base, ih, i),
			WatchURL:  fmt.Sprintf("%s/watch/%s?file=%d", base, ih, i),
		})
	}
	return v
}

func (g *Gateway) listTorrents(c echo.Context) error {
	base := g.baseURL(c)
	out := []torrentView{}
	for _, e := range g.torrents.List() {
		out = append(out, g.view(e, base))
	}
	if g.cluster != nil {
		out = gatherLists(g.cluster, c, "/api/torrents", out)
	}
	return c.JSON(http.StatusOK, out)
}

// addRequest is the JSON body of POST /api/torrents: exactly one of the three.
type addRequest struct {
	Magnet   string `json:"magnet"`
	InfoHash string `json:"infohash"`
	URL      string `json:"url"` // of a .torrent file, which the gateway fetches
	// Path is a file or folder on the gateway's own machine, hashed and seeded in place (as
	// `swarmgate seed` does): only with the admin token.
	Path string `json:"path"`
	// FetchAll fetches the whole torrent now, watched or not (a file a browser shares in).
	FetchAll bool `json:"fetch_all"`
}

func (g *Gateway) postTorrent(c echo.Context) error {
	if err := g.mayAdd(c); err != nil {
		return err
	}
	req := c.Request()
	body, err := io.ReadAll(io.LimitReader(req.Body, maxTorrentFileBytes+1))
	if err != nil {
		return fmt.Errorf("%w: reading body: %v", ErrBadInput, err)
	}
	if len(body) > maxTorrentFileBytes {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxTorrentFileBytes))
	}
	var (
		spec *torrent.TorrentSpec
		src  registry.Source
	)
	switch addBodyKind(req.Header.Get(echo.HeaderContentType), body) {
	case bodyMetainfo:
		spec, err = metainfoSpec(body)
	case bodyJSON:
		var ar addRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ar); err != nil {
			return fmt.Errorf("%w: body must be JSON {\"magnet\": ...} or {\"infohash\": ...}, or a .torrent file: %v", ErrBadInput, err)
		}
		src.FetchAll = ar.FetchAll
		given := 0
		for _, s := range []string{ar.Magnet, ar.InfoHash, ar.URL, ar.Path} {
			if s != "" {
				given++
			}
		}
		switch {
		case given > 1:
			return fmt.Errorf("%w: give one of magnet, infohash, url or path, not several", ErrBadInput)
		case ar.Path != "":
			return g.seedPath(c, ar.Path)
		case ar.URL != "":
			var file []byte
			if file, err = g.fetchTorrentFile(req.Context(), ar.URL); err == nil {
				spec, err = metainfoSpec(file)
			}
		case ar.Magnet != "":
			if src.Magnet, err = normalMagnet(ar.Magnet); err == nil {
				spec, err = magnetSpec(src.Magnet)
			}
		case ar.InfoHash != "":
			spec, err = infoHashSpec(ar.InfoHash)
		default:
			return fmt.Errorf("%w: body needs \"magnet\", \"infohash\", \"url\" or \"path\"", ErrBadInput)
		}
	default:
		return echo.NewHTTPError(http.StatusUnsupportedMediaType,
			"body must be JSON {\"magnet\": ...} or {\"infohash\": ...}, or a .torrent file (Content-Type application/json or application/x-bittorrent)")
	}
	if err != nil {
		return err
	}
	if g.cluster != nil && g.cluster.proxyAdd(c, spec.InfoHash, body) {
		return nil
	}
	t, isNew, err := g.addFromAPI(spec, src)
	if err != nil {
		return err
	}
	e, ok := g.torrents.Get(t.InfoHash())
	if !ok {
		return fmt.Errorf("%w: torrent was removed", ErrNotFound)
	}
	code := http.StatusOK
	if isNew {
		code = http.StatusCreated
	}
	return c.JSON(code, g.view(e, g.baseURL(c)))
}

// What a POST /api/torrents body holds.
const (
	bodyUnknown = iota
	bodyJSON
	bodyMetainfo
)

// addBodyKind tells a JSON request from a .torrent. The declared type wins when it is one of the
// two; anything else is judged by the body itself: `curl -d '{"magnet": ...}'` declares a form,
// `curl --data-binary @x.torrent` a form too, and a .torrent (a bencoded dictionary) starts with
// "d" followed by the length of its first key, where JSON starts with "{".
func addBodyKind(contentType string, body []byte) int {
	ctype, _, _ := strings.Cut(contentType, ";")
	switch strings.TrimSpace(strings.ToLower(ctype)) {
	case "application/json":
		return bodyJSON
	case "application/x-bittorrent":
		return bodyMetainfo
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	switch {
	case len(trimmed) == 0 && ctype == "":
		return bodyJSON // an empty body gets the JSON error, which says what to send
	case len(trimmed) > 0 && trimmed[0] == '{':
		return bodyJSON
	case len(body) > 1 && body[0] == 'd' && body[1] >= '0' && body[1] <= '9':
		return bodyMetainfo
	}
	return bodyUnknown
}

// seedPath seeds a file or folder of the gateway's own machine in place (`swarmgate seed
// --gateway`): it reads files as the gateway's user, so only the operator may, with the admin
// token, and never on a gateway without one. Hashing takes as long as reading the files; the
// answer comes when the torrent is served.
func (g *Gateway) seedPath(c echo.Context, path string) error {
	if g.cfg.AdminToken == "" {
		return fmt.Errorf("%w: seeding a path reads the gateway machine's files: it needs the gateway to have an admin token (--admin-token)", ErrForbidden)
	}
	if err := g.access.requireToken(c); err != nil {
		return err
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%w: path %q must be absolute (a path on the gateway's machine)", ErrBadInput, path)
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%w: path %q: %v", ErrBadInput, path, err)
	}
	parent, info, err := HashPath(path, nil)
	if err != nil {
		return fmt.Errorf("%w: hashing %q: %v", ErrBadInput, path, err)
	}
	g.addMu.Lock()
	defer g.addMu.Unlock()
	ih := metainfoInfoHash(info)
	_, existed := g.torrents.Get(ih)
	t, err := g.AddLocal(parent, info)
	if err != nil {
		return err
	}
	e, ok := g.torrents.Get(t.InfoHash())
	if !ok {
		return fmt.Errorf("%w: torrent was removed", ErrNotFound)
	}
	code := http.StatusCreated
	if existed {
		code = http.StatusOK
	}
	g.log.Info("seeding a path on request", "path", path, "infohash", t.InfoHash().HexString())
	return c.JSON(code, g.view(e, g.baseURL(c)))
}

func (g *Gateway) lookup(ihHex string) (*registry.Entry, error) {
	ih, err := parseInfoHash(ihHex)
	if err != nil {
		return nil, err
	}
	e, ok := g.torrents.Get(ih)
	if !ok {
		return nil, fmt.Errorf("%w: no torrent %s", ErrNotFound, ih.HexString())
	}
	return e, nil
}

func (g *Gateway) getTorrent(c echo.Context) error {
	e, err := g.lookup(c.Param("ih"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, g.playerView(e, g.baseURL(c)))
}

// playerView is one torrent's view as a player asks for it before it decides how to play (the
// API's single torrent, and a page's start-up data): with what its media files hold, probed once
// in the background ("probing" until then).
func (g *Gateway) playerView(e *registry.Entry, base string) torrentView {
	v := g.view(e, base)
	for i := range v.Files {
		if isMedia(v.Files[i].Path) {
			v.Files[i].Media = g.probes.view(e.Torrent().InfoHash(), v.Files[i].Index)
		}
	}
	return v
}

func (g *Gateway) deleteTorrent(c echo.Context) error {
	if err := g.access.requireToken(c); err != nil {
		return err
	}
	ih, err := parseInfoHash(c.Param("ih"))
	if err != nil {
		return err
	}
	deleteData := false
	switch d := c.QueryParam("data"); d {
	case "", "0", "false":
	case "1", "true":
		deleteData = true
	default:
		return fmt.Errorf("%w: data must be 1 or 0, got %q", ErrBadInput, d)
	}
	if err := g.Remove(ih, deleteData); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// waitInfo waits for a torrent's metadata, bounded by MetadataWait and the request.
func (g *Gateway) waitInfo(ctx context.Context, e *registry.Entry) (*metainfo.Info, error) {
	if registry.HasInfo(e.Torrent()) {
		return e.Torrent().Info(), nil
	}
	timer := time.NewTimer(g.cfg.MetadataWait)
	defer timer.Stop()
	select {
	case <-e.Torrent().GotInfo():
		return e.Torrent().Info(), nil
	case <-timer.C:
	case <-ctx.Done():
	case <-g.stop:
	}
	return nil, fmt.Errorf("%w for %s; retry shortly", ErrMetadataPending, e.Torrent().InfoHash().HexString())
}

func (g *Gateway) getMetainfo(c echo.Context) error {
	e, err := g.lookup(c.Param("ih"))
	if err != nil {
		return err
	}
	if _, err := g.waitInfo(c.Request().Context(), e); err != nil {
		return err
	}
	mi := g.browserMetainfo(e, g.baseURL(c))
	c.Response().Header().Set(echo.HeaderContentType, "application/x-bittorrent")
	c.Response().Header().Set(echo.HeaderContentDisposition, fmt.Sprintf("attachment; filename=%q", e.Torrent().Name()+".torrent"))
	c.Response().WriteHeader(http.StatusOK)
	return mi.Write(c.Response())
}

// browserMetainfo is the torrent's metainfo as browsers get it: the gateway's websocket tracker
// first and its webseed. The metadata must be there (hasInfo).
func (g *Gateway) browserMetainfo(e *registry.Entry, base string) metainfo.MetaInfo {
	ih := e.Torrent().InfoHash().HexString()
	mi := e.Torrent().Metainfo()
	ws := TrackerURL(base)
	// The gateway's tracker first; other websocket trackers stay as fallbacks. Browsers cannot use
	// http/udp trackers, native clients ignore the ws ones.
	list := metainfo.AnnounceList{{ws}}
	for _, tier := range mi.UpvertedAnnounceList() {
		for _, u := range tier {
			if u != ws && (strings.HasPrefix(u, "ws://") || strings.HasPrefix(u, "wss://")) {
				list = append(list, []string{u})
			}
		}
	}
	mi.Announce = ws
	mi.AnnounceList = list
	// anacrolix stamps the time of the call: the torrent's own add time keeps the file the same
	// from one request to the next (the pages' boot data and /metainfo match, caches work).
	mi.CreationDate = e.Added().Unix()
	mi.UrlList = []string{base + "/webseed/" + ih + "/"}
	return mi
}
