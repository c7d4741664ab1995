package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"html"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent"

	"github.com/swarmgate/swarmgate/internal/peertest"
	"github.com/swarmgate/swarmgate/web"

	"github.com/swarmgate/swarmgate/registry"
)

// Pages, assets, the service worker, oEmbed and frame-ancestors, against a real demo gateway.
// Playback itself is tested in a real browser by e2e/.

func startDemoGateway(t *testing.T, origins ...string) (*running, string) {
	t.Helper()
	r := startGateway(t, func(c *Config) {
		c.Demo = true
		c.EmbedOrigins = origins
	})
	return r, demoInfoHash(t, r)
}

func TestPagesAndAssets(t *testing.T) {
	r, ih := startDemoGateway(t)
	vendored, err := fs.ReadFile(web.Static(), "vendor/sw.min.js")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path, ctype string
		contains    []string
	}{
		{"/", "text/html", []string{`id="add"`, `/static/index.js`}},
		{"/watch/" + ih, "text/html", []string{`<video id="player"`, `id="message"`, `/static/watch.js`, "<title>" + demoName}},
		{"/watch/" + ih + "?file=0", "text/html", []string{`<video id="player"`}},
		{"/embed/" + ih + "?file=0", "text/html", []string{`<video id="player"`, `id="message"`, `/static/embedded.js`}},
		{"/embed.js", "text/javascript", []string{"customElements.define('swarm-player'"}},
		{"/sw.min.js", "text/javascript", []string{string(vendored[:40])}},
		{"/static/vendor/webtorrent.min.js", "text/javascript", []string{"export{"}},
		{"/static/player.js", "text/javascript", []string{"window.swarmgate"}},
		{"/static/watch.js", "text/javascript", nil},
		{"/static/embedded.js", "text/javascript", []string{"start("}},
		{"/static/index.js", "text/javascript", nil},
		{"/static/style.css", "text/css", nil},
		{"/static/icon.svg", "image/svg+xml", nil},
	}
	for _, c := range cases {
		res := r.get(t, c.path, nil)
		if res.status != http.StatusOK {
			t.Errorf("GET %s: %d %.200s", c.path, res.status, res.body)
			continue
		}
		if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, c.ctype) {
			t.Errorf("GET %s: Content-Type %q, want %s", c.path, ct, c.ctype)
		}
		for _, s := range c.contains {
			if !bytes.Contains(res.body, []byte(s)) {
				t.Errorf("GET %s: body lacks %q", c.path, s)
			}
		}
		if res.header.Get("X-Frame-Options") != "" {
			t.Errorf("GET %s: X-Frame-Options %q: embeds must stay possible", c.path, res.header.Get("X-Frame-Options"))
		}
	}

	// The worker: at the root, allowed the root scope, byte for byte the vendored file.
	res := r.get(t, "/sw.min.js", nil)
	if got := res.header.Get("Service-Worker-Allowed"); got != "/" {
		t.Errorf("/sw.min.js: Service-Worker-Allowed %q, want /", got)
	}
	if !bytes.Equal(res.body, vendored) {
		t.Errorf("/sw.min.js differs from web/static/vendor/sw.min.js")
	}

	// Assets revalidate with their ETag.
	etag := res.header.Get("ETag")
	if etag == "" {
		t.Fatalf("/sw.min.js has no ETag")
	}
	if res := r.get(t, "/sw.min.js", map[string]string{"If-None-Match": etag}); res.status != http.StatusNotModified {
		t.Errorf("/sw.min.js with If-None-Match: %d, want 304", res.status)
	}

	// The watch page announces its oEmbed twin.
	res = r.get(t, "/watch/"+ih+"?file=0", nil)
	if !bytes.Contains(res.body, []byte(`type="application/json+oembed"`)) {
		t.Errorf("watch page lacks oEmbed discovery: %s", res.body)
	}
	watchURL := r.base + "/watch/" + ih + "?file=0"
	if !bytes.Contains(res.body, []byte(`href="`+r.base+"/oembed?format=json&amp;url="+url.QueryEscape(watchURL)+`"`)) {
		t.Errorf("watch page's oEmbed link does not name %s: %s", watchURL, res.body)
	}

	// Pages of torrents the gateway does not have answer 404 with a page that says so and what to
	// do (not the player over nothing, not a JSON error).
	for p, want := range map[string]string{
		"/watch/" + strings.Repeat("ab", 20): `href="/?add=` + strings.Repeat("ab", 20) + `"`,
		"/embed/" + strings.Repeat("ab", 20): "does not hold the torrent",
		"/watch/xyz":                         "40-hex infohash",
	} {
		res := r.get(t, p, nil)
		if res.status != http.StatusNotFound || !strings.HasPrefix(res.header.Get("Content-Type"), "text/html") ||
			!bytes.Contains(res.body, []byte("Unknown torrent")) || !bytes.Contains(res.body, []byte(want)) || bytes.Contains(res.body, []byte("<video")) {
			t.Errorf("%s: %d %q, want 404 with a page saying %q and no player: %s", p, res.status, res.header.Get("Content-Type"), want, res.body)
		}
	}
	if res := r.get(t, "/watch/%3Cscript%3E", nil); res.status != http.StatusNotFound || bytes.Contains(res.body, []byte("<script>")) {
		t.Errorf("watch page of a hostile infohash: %d %s", res.status, res.body)
	}
	// An unknown torrent's page does not stick: the known one still gets the player.
	if res := r.get(t, "/watch/"+ih, nil); res.status != http.StatusOK || !bytes.Contains(res.body, []byte("<video")) {
		t.Errorf("watch page after unknown ones: %d, player %v", res.status, bytes.Contains(res.body, []byte("<video")))
	}

	for _, p := range []string{"/static/nope.js", "/static/../web.go", "/static/vendor", "/static/"} {
		wantJSONError(t, "GET "+p, r.get(t, p, nil), http.StatusNotFound)
	}
}

func TestOEmbed(t *testing.T) {
	r, ih := startDemoGateway(t)
	get := func(q url.Values) response { return r.get(t, "/oembed?"+q.Encode(), nil) }

	for _, page := range []string{"/watch/" + ih + "?file=0", "/embed/" + ih + "?file=0", "/watch/" + strings.ToUpper(ih)} {
		res := get(url.Values{"url": {r.base + page}})
		if res.status != http.StatusOK {
			t.Fatalf("oembed %s: %d %s", page, res.status, res.body)
		}
		var o map[string]any
		if err := json.Unmarshal(res.body, &o); err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]any{
			"version": "1.0", "type": "video", "provider_name": "swarmgate", "provider_url": r.base + "/",
			"title": demoName, "width": 640.0, "height": 360.0,
		} {
			if o[k] != want {
				t.Errorf("oembed %s: %s = %v, want %v", page, k, o[k], want)
			}
		}
		html, _ := o["html"].(string)
		src := r.base + "/embed/" + ih
		if strings.Contains(page, "file=0") {
			src += "?file=0"
		}
		if !strings.HasPrefix(html, `<iframe src="`+src+`" width="640" height="360"`) {
			t.Errorf("oembed %s: html %q", page, html)
		}
	}

	// maxwidth and maxheight shrink the player, keeping 16:9.
	for _, c := range []struct {
		maxW, maxH string
		w, h       float64
	}{
		{"320", "", 320, 180},
		{"", "180", 320, 180},
		{"1920", "1080", 640, 360},
		{"480", "90", 160, 90},
	} {
		res := get(url.Values{"url": {r.base + "/watch/" + ih}, "maxwidth": {c.maxW}, "maxheight": {c.maxH}, "format": {"json"}})
		var o struct{ Width, Height float64 }
		if err := json.Unmarshal(res.body, &o); err != nil || res.status != http.StatusOK {
			t.Fatalf("maxwidth %s maxheight %s: %d %s", c.maxW, c.maxH, res.status, res.body)
		}
		if o.Width != c.w || o.Height != c.h {
			t.Errorf("maxwidth %s maxheight %s: %vx%v, want %vx%v", c.maxW, c.maxH, o.Width, o.Height, c.w, c.h)
		}
	}

	for what, q := range map[string]url.Values{
		"no url":            {},
		"foreign host":      {"url": {"https://example.org/watch/" + ih}},
		"not a page":        {"url": {r.base + "/api/torrents/" + ih}},
		"unknown torrent":   {"url": {r.base + "/watch/" + strings.Repeat("ab", 20)}},
		"bad infohash":      {"url": {r.base + "/watch/xyz"}},
		"file out of range": {"url": {r.base + "/watch/" + ih + "?file=7"}},
		"negative file":     {"url": {r.base + "/watch/" + ih + "?file=-1"}},
		"not http":          {"url": {"ftp://" + strings.TrimPrefix(r.base, "http://") + "/watch/" + ih}},
	} {
		wantJSONError(t, "oembed "+what, get(q), http.StatusNotFound)
	}
	wantJSONError(t, "oembed format=xml", get(url.Values{"url": {r.base + "/watch/" + ih}, "format": {"xml"}}), http.StatusNotImplemented)
	wantJSONError(t, "oembed bad maxwidth", get(url.Values{"url": {r.base + "/watch/" + ih}, "maxwidth": {"wide"}}), http.StatusBadRequest)
}

func TestFrameAncestors(t *testing.T) {
	t.Run("default: any site", func(t *testing.T) {
		r, ih := startDemoGateway(t)
		for _, p := range []string{"/watch/" + ih, "/embed/" + ih, "/"} {
			res := r.get(t, p, nil)
			if csp := res.header.Get("Content-Security-Policy"); csp != "" {
				t.Errorf("GET %s: Content-Security-Policy %q without EmbedOrigins", p, csp)
			}
		}
	})
	t.Run("EmbedOrigins", func(t *testing.T) {
		r, ih := startDemoGateway(t, "https://blog.example.org", "http://127.0.0.1:9000")
		want := "frame-ancestors 'self' https://blog.example.org http://127.0.0.1:9000"
		for _, p := range []string{"/watch/" + ih, "/embed/" + ih + "?file=0"} {
			res := r.get(t, p, nil)
			if csp := res.header.Get("Content-Security-Policy"); csp != want {
				t.Errorf("GET %s: Content-Security-Policy %q, want %q", p, csp, want)
			}
			if xfo := res.header.Get("X-Frame-Options"); xfo != "" {
				t.Errorf("GET %s: X-Frame-Options %q", p, xfo)
			}
		}
	})
}

func TestEmbedOriginsValidation(t *testing.T) {
	for _, ok := range []string{"https://example.org", "http://127.0.0.1:9000", "https://a.b-c.example:8443", "http://[::1]:8080", "http://localhost"} {
		cfg := testConfig(t)
		cfg.EmbedOrigins = []string{ok}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{
		"", "example.org", "*", "https://", "ftp://example.org", "https://example.org/", "https://example.org/path",
		"https://example.org?x=1", "https://example.org#f", "https://user@example.org", "https://example.org:0",
		"https://example.org:99999", "https://example.org:", "https://exa mple.org", "https://example.org;script-src *",
		"https://example.org 'unsafe-inline'", "'self'",
	} {
		cfg := testConfig(t)
		cfg.EmbedOrigins = []string{"https://fine.example", bad}
		err := cfg.Validate()
		if err == nil {
			t.Errorf("%q accepted", bad)
			continue
		}
		if !strings.Contains(err.Error(), "EmbedOrigins") {
			t.Errorf("%q: error %q does not name the setting", bad, err)
		}
	}
}

// TestPageViewFetchesOnlyTheStart: opening a watch or embed page fetches the metadata and the
// first pieces of the file it would play while the page loads, so that playback starts at once;
// it is not a download order (link-preview bots open pages too, and oEmbed invites them). Only
// a read, here /stream, fetches the whole torrent. Pages are opened before the gateway knows a
// peer (the pieces are asked for when the metadata arrives) and after.
func TestPageViewFetchesOnlyTheStart(t *testing.T) {
	const size, pieceLength = 8 << 20, 64 << 10
	const bound = registry.PageWarmBytes + pieceLength // the first pieces, and at most one more
	r := startGateway(t, nil)
	for _, tc := range []struct {
		name string
		page func(ih string) string
		warm bool // the page asks for the first pieces; oEmbed does not
		// metainfo: added by .torrent, so the page finds the metadata already there
		metainfo bool
	}{
		{"watch", func(ih string) string { return "/watch/" + ih }, true, false},
		{"watch with metadata", func(ih string) string { return "/watch/" + ih }, true, true},
		{"embed", func(ih string) string { return "/embed/" + ih + "?file=0" }, true, false},
		{"oembed", func(ih string) string {
			return "/oembed?format=json&url=" + url.QueryEscape(r.base+"/watch/"+ih)
		}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seeder, err := peertest.NewSeeder(t.TempDir(), "film.mp4", size, pieceLength, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(seeder.Close)
			ih := seeder.Torrent.InfoHash().HexString()
			if tc.metainfo {
				if res := addFromSeeder(t, r, seeder); res.status != http.StatusCreated {
					t.Fatalf("POST: %d %s", res.status, res.body)
				}
			} else if res := r.postJSON(t, map[string]string{"infohash": ih}); res.status != http.StatusCreated {
				t.Fatalf("POST: %d %s", res.status, res.body)
			}
			e, err := r.g.lookup(ih)
			if err != nil {
				t.Fatal(err)
			}
			if res := r.get(t, tc.page(ih), nil); res.status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", tc.page(ih), res.status, res.body)
			}
			if !tc.metainfo {
				e.Torrent().AddPeers([]torrent.PeerInfo{{Addr: torrent.StringAddr(seeder.Addr().String()), Source: "x.pe"}})
			}
			waitGotInfo(t, r.g, ih)
			if tc.warm {
				waitFor(t, 20*time.Second, "the first pieces after the page alone", func() bool {
					return e.Torrent().BytesCompleted() >= registry.PageWarmBytes
				})
			}
			// Give the demand loop two rounds to start a prefetch if it thought someone watched.
			waitMaintainTicks(t, e, 2)
			if got := e.Torrent().BytesCompleted(); got > bound {
				t.Errorf("%d of %d bytes fetched after %s alone, want at most %d", got, size, tc.name, bound)
			}
			if st := e.State(); st != registry.StateIdle {
				t.Errorf("state %q after %s alone, want %q", st, tc.name, registry.StateIdle)
			}
			// A player reads: now the whole torrent comes.
			if res := r.get(t, "/stream/"+ih+"/0", map[string]string{"Range": "bytes=0-99"}); res.status != http.StatusPartialContent {
				t.Fatalf("stream: %d %s", res.status, res.body)
			}
			waitFor(t, 30*time.Second, "the torrent complete after a /stream read", func() bool { return e.Torrent().Complete().Bool() })
		})
	}
}

// waitMaintainTicks waits for the registry's maintenance loop to sample e's rates n more times: it
// has then also looked at e's demand n times.
func waitMaintainTicks(t *testing.T, e *registry.Entry, n int) {
	t.Helper()
	prevAt := func() time.Time { return e.Rates().SampledAt() }
	last, seen := prevAt(), 0
	waitFor(t, time.Duration(n+5)*time.Second, "the maintain loop's ticks", func() bool {
		if at := prevAt(); !at.Equal(last) {
			last, seen = at, seen+1
		}
		return seen >= n
	})
}

// TestPagesCarryBootData: the watch and embed pages of a torrent with metadata carry what the
// player would fetch first, equal to the API's answers; pages of unknown torrents carry none.
func TestPagesCarryBootData(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.Demo = true })
	list := r.get(t, "/api/torrents", nil)
	var views []torrentView
	if err := json.Unmarshal(list.body, &views); err != nil || len(views) != 1 {
		t.Fatalf("list: %v %s", err, list.body)
	}
	ih := views[0].InfoHash
	wantMeta := r.get(t, "/api/torrents/"+ih+"/metainfo", nil).body
	var wantConfig clientConfig
	if err := json.Unmarshal(r.get(t, "/api/config", nil).body, &wantConfig); err != nil {
		t.Fatal(err)
	}
	bootRE := regexp.MustCompile(`<script type="application/json" id="swarmgate-boot">([^<]*)</script>`)
	for _, page := range []string{"/watch/", "/embed/"} {
		res := r.get(t, page+ih+"?file=0", nil)
		m := bootRE.FindSubmatch(res.body)
		if m == nil {
			t.Fatalf("%s: no boot data in\n%s", page, res.body)
		}
		var boot pageBoot
		if err := json.Unmarshal(m[1], &boot); err != nil {
			t.Fatalf("%s: boot data: %v", page, err)
		}
		if boot.Torrent.InfoHash != ih || boot.Torrent.State != registry.StateSeeding || len(boot.Torrent.Files) != 1 {
			t.Errorf("%s: boot torrent %+v", page, boot.Torrent)
		}
		if boot.Config.TrackerURL != wantConfig.TrackerURL || boot.Config.PeerID != wantConfig.PeerID {
			t.Errorf("%s: boot config %+v, want %+v", page, boot.Config, wantConfig)
		}
		meta, err := base64.StdEncoding.DecodeString(boot.Metainfo)
		if err != nil || !bytes.Equal(meta, wantMeta) {
			t.Errorf("%s: boot metainfo (%d bytes, %v) differs from /metainfo (%d bytes)", page, len(meta), err, len(wantMeta))
		}
	}
	res := r.get(t, "/watch/"+strings.Repeat("0", 40), nil)
	if bootRE.Match(res.body) {
		t.Errorf("the page of an unknown torrent carries boot data")
	}
}

// playerVideoRE is a watch or embed page's player <video> tag, its src (if any) in group 1.
var playerVideoRE = regexp.MustCompile(`<video id="player"[^>]*?(?: src="([^"]*)")?>`)

// playerVideo returns the player's <video> tag of page (its body) and the tag's src, unescaped
// ("" for none).
func playerVideo(t *testing.T, page string, body []byte) (tag, src string) {
	t.Helper()
	m := playerVideoRE.FindSubmatch(body)
	if m == nil {
		t.Fatalf("%s: no <video id=\"player\">", page)
	}
	return string(m[0]), html.UnescapeString(string(m[1]))
}

// TestPagesStartOnStream: the watch and embed pages of a torrent with metadata start their video
// on the /stream of the file the page plays (the quick start), the one ?file names or else the
// largest video; not where the player alone knows how it will play (?audio, ?caps: HLS), nor for
// a file that is not one a browser plays as it is, nor for an unknown torrent.
func TestPagesStartOnStream(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.Demo = true })
	var views []torrentView
	if err := json.Unmarshal(r.get(t, "/api/torrents", nil).body, &views); err != nil || len(views) != 1 || len(views[0].Files) != 1 {
		t.Fatalf("list: %v %+v", err, views)
	}
	ih, want := views[0].InfoHash, views[0].Files[0].StreamURL
	if views[0].Files[0].MIME != "video/mp4" {
		t.Fatalf("the demo is %s, not an MP4", views[0].Files[0].MIME)
	}
	// The video's src; and whether the page is as a quick start wants it: the video without its
	// controls and the page's modules run by the loader once it plays, else both from the start.
	src := func(page, module string) (src string, quickStartPage, plainPage bool) {
		body := r.get(t, page, nil).body
		tag, src := playerVideo(t, page, body)
		controls := strings.Contains(tag, " controls ")
		loader := bytes.Contains(body, []byte(`import("`+module+`")`))
		script := bytes.Contains(body, []byte(`<script type="module" src="`+module+`">`))
		return src, !controls && loader && !script, controls && !loader && script
	}
	for page, module := range map[string]string{"/watch/": "/static/watch.js", "/embed/": "/static/embedded.js"} {
		for _, q := range []string{"", "?file=0"} {
			got, quickStartPage, _ := src(page+ih+q, module)
			if got != want+"?quick=1" {
				t.Errorf("%s%s: video src %q, want the file's stream, paced %q", page, q, got, want+"?quick=1")
			}
			if !quickStartPage {
				t.Errorf("%s%s%s: the video has its controls or %s is not loaded after it plays", page, ih, q, module)
			}
		}
		for _, q := range []string{"?file=0&audio=1", "?caps=no-mse", "?file=1"} {
			got, _, plainPage := src(page+ih+q, module)
			if got != "" {
				t.Errorf("%s%s: video src %q, want none", page, q, got)
			}
			if !plainPage {
				t.Errorf("%s%s%s: the video lacks its controls or %s is not a module script", page, ih, q, module)
			}
		}
	}
	if body := r.get(t, "/watch/"+strings.Repeat("0", 40), nil).body; bytes.Contains(body, []byte("/stream/")) {
		t.Errorf("the page of an unknown torrent names a stream:\n%s", body)
	}
}
