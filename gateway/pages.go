package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/labstack/echo/v4"

	"github.com/swarmgate/swarmgate/registry"
	"github.com/swarmgate/swarmgate/web"
)

// pageTemplates are the pages that name a torrent; parsed once, they are embedded.
var pageTemplates = template.Must(template.ParseFS(web.Templates(), "*.html"))

// pageData is what the watch and embed templates are filled with.
type pageData struct {
	Title    string
	InfoHash string
	// For unknown.html, the page of a torrent the gateway does not hold: whether the address
	// holds an infohash at all, and whether it was the embed's.
	InfoHashValid bool
	Embed         bool
	WatchURL      string
	EmbedURL      string
	OEmbedURL     string
	// Boot is what the player would fetch first (config, the torrent, its metainfo), as JSON, so
	// that it starts without those round trips; empty when the torrent is unknown or has no
	// metadata yet (the player then asks).
	Boot template.JS
	// Stream is the /stream URL of the file the page's <video> starts on before any script has
	// run (quickStream), so that the first frame comes at plain-HTTP speed and the page plays
	// without JavaScript; the player then decides how to go on. Empty for no such file.
	Stream string
}

// quickStreamTypes are the types a browser plays as they are, commonly enough to start on before
// the player has asked the browser (playplan.js decides, and stops the stream when it was wrong).
var quickStreamTypes = map[string]bool{
	"video/mp4": true, "video/webm": true, "video/ogg": true,
	"audio/mp4": true, "audio/mpeg": true, "audio/ogg": true, "audio/flac": true, "audio/wav": true,
}

// quickStream is the /stream URL a page of the torrent starts its <video> on: the file ?file
// names (file), or with file < 0 the largest video or audio file (the one the gateway warms),
// when its type is one of quickStreamTypes. Empty when the page asks for a way of playing that
// only the player knows (?audio, ?caps: HLS), when there is no such file, or when room says the
// uplink has no room for its quick start.
func quickStream(e *registry.Entry, base string, file int, q url.Values, room func(ih metainfo.Hash, file int, length int64) bool) string {
	if q.Has("audio") || q.Has("caps") {
		return ""
	}
	files := e.Torrent().Files()
	if file < 0 {
		for i, f := range files {
			if isMedia(f.DisplayPath()) && (file < 0 || f.Length() > files[file].Length()) {
				file = i
			}
		}
	}
	if file < 0 || file >= len(files) || !quickStreamTypes[mimeType(files[file].DisplayPath())] {
		return ""
	}
	if !room(e.Torrent().InfoHash(), file, files[file].Length()) {
		return ""
	}
	return fmt.Sprintf("%s/stream/%s/%d?%s=1", base, e.Torrent().InfoHash().HexString(), file, quickParam)
}

// pageBoot is the player's start-up data, the same shapes as /api/config, /api/torrents/{ih} and
// /api/torrents/{ih}/metainfo (base64).
type pageBoot struct {
	Config   clientConfig `json:"config"`
	Torrent  torrentView  `json:"torrent"`
	Metainfo string       `json:"metainfo,omitempty"`
}

// maxBootMetainfo bounds the metainfo inlined into a page; larger ones are fetched.
const maxBootMetainfo = 256 << 10

// bootData renders pageBoot for a torrent with metadata. encoding/json escapes <, > and &, so the
// result is safe inside a <script> element.
func (g *Gateway) bootData(e *registry.Entry, base string) (template.JS, error) {
	b := pageBoot{Config: g.clientConfig(base), Torrent: g.playerView(e, base)}
	var mi bytes.Buffer
	m := g.browserMetainfo(e, base)
	if err := m.Write(&mi); err != nil {
		return "", err
	}
	if mi.Len() <= maxBootMetainfo {
		b.Metainfo = base64.StdEncoding.EncodeToString(mi.Bytes())
	}
	js, err := json.Marshal(b)
	return template.JS(js), err
}

func (g *Gateway) pageRoutes(e *echo.Echo) {
	a := &assets{fs: web.Static()}
	get := []string{http.MethodGet, http.MethodHead}
	e.Match(get, "/", func(c echo.Context) error {
		g.frameHeaders(c)
		return a.serve(c, "index.html")
	})
	// The home renders them: their boot data names its peer id and its torrent's state.
	e.Match(get, "/watch/:ih", g.torrentPage("watch.html"), g.toHome()...)
	e.Match(get, "/embed/:ih", g.torrentPage("embed.html"), g.toHome()...)
	e.Match(get, "/embed.js", func(c echo.Context) error { return a.serve(c, "embed.js") })
	// webtorrent's service worker, at the root so that its scope can be the whole site.
	e.Match(get, "/sw.min.js", func(c echo.Context) error {
		c.Response().Header().Set("Service-Worker-Allowed", "/")
		return a.serve(c, "vendor/sw.min.js")
	})
	e.Match(get, "/static/*", func(c echo.Context) error { return a.serve(c, c.Param("*")) })
	e.GET("/oembed", g.oembed)
}

// frameHeaders limits who may frame the pages when EmbedOrigins is set; by default anyone may.
func (g *Gateway) frameHeaders(c echo.Context) {
	if len(g.cfg.EmbedOrigins) > 0 {
		c.Response().Header().Set("Content-Security-Policy", "frame-ancestors 'self' "+strings.Join(g.cfg.EmbedOrigins, " "))
	}
}

// torrentPage renders the watch or embed page. A torrent the gateway does not hold (or an address
// that is no infohash) answers 404, with the page saying so ("Unknown torrent", and how to add
// it): links to it are dead, and crawlers and link previews should know. One that waits for its
// metadata answers 200: the page shows the wait.
func (g *Gateway) torrentPage(name string) echo.HandlerFunc {
	return func(c echo.Context) error {
		ih := strings.ToLower(c.Param("ih"))
		base := g.baseURL(c)
		d := pageData{Title: "swarmgate", InfoHash: ih}
		status := http.StatusNotFound
		if e, err := g.lookup(ih); err == nil {
			status = http.StatusOK
			if n := e.Torrent().Name(); n != "" {
				d.Title = cleanName(n)
			}
			if registry.HasInfo(e.Torrent()) {
				if d.Boot, err = g.bootData(e, base); err != nil {
					return err
				}
			}
			// Fetch the start of the file from the native swarm now, while the page is still
			// loading its scripts, rather than at its first byte request; the whole torrent
			// only once the player reads.
			if file, ok := pageFile(c.QueryParam("file")); ok {
				e.PageView(file)
				// Not while the upload cap is reached, or was lately: what the quick start sends
				// comes again over webtorrent, and it would get only a share of the cap. Nor
				// under a cap too tight for it (quickCapRoom).
				if d.Boot != "" && !g.uplinkBusyLately() {
					d.Stream = quickStream(e, base, file, c.QueryParams(), g.capRoomForQuickStart)
				}
			}
		}
		q := ""
		if f := c.QueryParam("file"); f != "" {
			q = "?file=" + url.QueryEscape(f)
		}
		d.WatchURL = base + "/watch/" + url.PathEscape(ih) + q
		d.EmbedURL = base + "/embed/" + url.PathEscape(ih) + q
		d.OEmbedURL = base + "/oembed?format=json&url=" + url.QueryEscape(d.WatchURL)
		page := name
		if status == http.StatusNotFound {
			// Not the player over nothing: a page that says what happened and what to do.
			_, err := parseInfoHash(ih)
			d.InfoHashValid, d.Embed = err == nil, name == "embed.html"
			page = "unknown.html"
		}
		var b bytes.Buffer
		if err := pageTemplates.ExecuteTemplate(&b, page, d); err != nil {
			return err
		}
		g.frameHeaders(c)
		c.Response().Header().Set("Cache-Control", "no-cache")
		return c.HTMLBlob(status, b.Bytes())
	}
}

// pageFile reads a page's ?file: -1 without one, false when it names no file (the page says so).
func pageFile(q string) (int, bool) {
	if q == "" {
		return -1, true
	}
	n, err := strconv.Atoi(q)
	return n, err == nil && n >= 0
}

// assets serves the embedded static files with a content type, an ETag and revalidation, so that
// a new build's pages are picked up at once and an unchanged file costs a 304.
type assets struct {
	fs    fs.FS
	etags sync.Map // name → ETag
}

func (a *assets) serve(c echo.Context, name string) error {
	b, err := fs.ReadFile(a.fs, name)
	if err != nil {
		return fmt.Errorf("%w: no page or asset %q", ErrNotFound, name)
	}
	h := c.Response().Header()
	ctype := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".js", ".mjs":
		ctype = "text/javascript; charset=utf-8"
	case ".html":
		ctype = "text/html; charset=utf-8"
	case ".css":
		ctype = "text/css; charset=utf-8"
	}
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h.Set(echo.HeaderContentType, ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	etag, ok := a.etags.Load(name)
	if !ok {
		sum := sha256.Sum256(b)
		etag = `"` + hex.EncodeToString(sum[:12]) + `"`
		a.etags.Store(name, etag)
	}
	h.Set("ETag", etag.(string))
	http.ServeContent(c.Response(), c.Request(), name, time.Time{}, bytes.NewReader(b))
	return nil
}

// liveData is what the live watch and embed templates are filled with.
type liveData struct {
	Stream    string
	WatchURL  string
	EmbedURL  string
	OEmbedURL string
	// Boot is {"stream": …, "config": /api/config's answer}, as JSON.
	Boot template.JS
}

// liveEmbedPath is the live embed page's last path element: /live/{stream}/embed.
const liveEmbedPath = "embed"

// livePage renders the live watch page (live.html) or its embed page (live-embed.html). Like the
// torrent pages it answers 200 for any stream: the page itself says whether the gateway has the
// stream (and when it stalls).
func (g *Gateway) livePage(c echo.Context, stream, name string) error {
	base := g.baseURL(c)
	boot, err := json.Marshal(struct {
		Stream string       `json:"stream"`
		Config clientConfig `json:"config"`
	}{stream, g.clientConfig(base)})
	if err != nil {
		return err
	}
	q := ""
	if l := c.QueryParam("latency"); l != "" {
		q = "?latency=" + url.QueryEscape(l)
	}
	d := liveData{Stream: stream, Boot: template.JS(boot)}
	d.WatchURL = base + "/live/" + url.PathEscape(stream) + q
	d.EmbedURL = base + "/live/" + url.PathEscape(stream) + "/" + liveEmbedPath + q
	d.OEmbedURL = base + "/oembed?format=json&url=" + url.QueryEscape(d.WatchURL)
	var b bytes.Buffer
	if err := pageTemplates.ExecuteTemplate(&b, name, d); err != nil {
		return err
	}
	g.frameHeaders(c)
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.HTMLBlob(http.StatusOK, b.Bytes())
}
