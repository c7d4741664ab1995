package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/live"
)

// TestLiveEmbedPage: /live/{stream}/embed is the bare live player for iframes (live.js and its
// boot data, no page chrome), for any stream like the watch page; the origin's routes beside it
// are untouched, frame-ancestors follows EmbedOrigins as for the torrent pages, and the watch
// page announces its oEmbed twin.
func TestLiveEmbedPage(t *testing.T) {
	r := startGateway(t, func(c *Config) {
		c.IngestToken = testIngestToken
		c.EmbedOrigins = []string{"https://blog.example.org"}
	})
	id := live.StreamIDOfKey(mustKey(t)).String()
	for _, p := range []string{"/live/" + id + "/embed", "/live/" + id + "/embed?latency=5"} {
		res := r.get(t, p, nil)
		if res.status != http.StatusOK || !strings.EqualFold(res.header.Get("Content-Type"), "text/html; charset=utf-8") {
			t.Fatalf("GET %s: %d %v", p, res.status, res.header)
		}
		for _, want := range []string{`<body class="embed">`, `<video id="player"`, `id="message"`, `from '/static/live.js'`, `postMessage`} {
			if !bytes.Contains(res.body, []byte(want)) {
				t.Errorf("GET %s lacks %s:\n%s", p, want, res.body)
			}
		}
		for _, chrome := range []string{`id="s-state"`, `<main>`, `index.m3u8`} {
			if bytes.Contains(res.body, []byte(chrome)) {
				t.Errorf("GET %s has page chrome %s:\n%s", p, chrome, res.body)
			}
		}
		m := regexp.MustCompile(`(?s)<script type="application/json" id="swarmgate-boot">(.*?)</script>`).FindSubmatch(res.body)
		var boot struct {
			Stream string       `json:"stream"`
			Config clientConfig `json:"config"`
		}
		if m == nil || json.Unmarshal(m[1], &boot) != nil || boot.Stream != id || boot.Config.TrackerURL != TrackerURL(r.base) {
			t.Errorf("GET %s: boot data %q", p, m)
		}
		if csp := res.header.Get("Content-Security-Policy"); csp != "frame-ancestors 'self' https://blog.example.org" {
			t.Errorf("GET %s: Content-Security-Policy %q", p, csp)
		}
		if xfo := res.header.Get("X-Frame-Options"); xfo != "" {
			t.Errorf("GET %s: X-Frame-Options %q", p, xfo)
		}
	}
	res := r.get(t, "/live/"+id+"/embed?latency=5", nil)
	if want := `href="` + r.base + "/live/" + id + `?latency=5"`; !bytes.Contains(res.body, []byte(want)) {
		t.Errorf("embed page's link to the watch page lacks %s:\n%s", want, res.body)
	}

	// Not ids, and names that are not the embed page, behave as before: the page for any name,
	// the origin's 404 JSON below it.
	if res := r.get(t, "/live/not-a-stream/embed", nil); res.status != http.StatusOK || !bytes.Contains(res.body, []byte("/static/live.js")) {
		t.Errorf("embed page of a name that is no stream id: %d %.200s", res.status, res.body)
	}
	if res := r.get(t, "/live/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E/embed", nil); res.status != http.StatusOK || bytes.Contains(res.body, []byte("<img")) {
		t.Errorf("embed page of a hostile name: %d %s", res.status, res.body)
	}
	for _, p := range []string{"/live/" + id + "/embed/x", "/live/" + id + "/embedx", "/live/" + id + "/index.m3u8", "/live//embed"} {
		wantJSONError(t, "GET "+p, r.get(t, p, nil), http.StatusNotFound)
	}
	// An upload to .../embed is the origin's (and refused there), never the page.
	if res := r.do(t, http.MethodPut, "/live/"+id+"/embed", map[string]string{"Authorization": "Bearer " + testIngestToken}, strings.NewReader("x")); res.status < 400 || bytes.Contains(res.body, []byte("<html")) {
		t.Errorf("PUT /live/{stream}/embed: %d %.200s", res.status, res.body)
	}

	// With a trailing slash it is the watch page too (the URL oEmbed takes as the watch URL).
	if res := r.get(t, "/live/"+id+"/", nil); res.status != http.StatusOK || !bytes.Contains(res.body, []byte("/static/live.js")) {
		t.Errorf("GET /live/{stream}/: %d %.200s", res.status, res.body)
	}

	// The watch page names its embed page and its oEmbed answer.
	res = r.get(t, "/live/"+id, nil)
	watchURL := r.base + "/live/" + id
	for _, want := range []string{
		`<link rel="alternate" type="application/json+oembed" href="` + r.base + "/oembed?format=json&amp;url=" + url.QueryEscape(watchURL) + `"`,
		`href="` + r.base + "/live/" + id + `/embed"`,
	} {
		if !bytes.Contains(res.body, []byte(want)) {
			t.Errorf("live watch page lacks %s:\n%s", want, res.body)
		}
	}
	if csp := res.header.Get("Content-Security-Policy"); csp != "frame-ancestors 'self' https://blog.example.org" {
		t.Errorf("live watch page: Content-Security-Policy %q", csp)
	}
}

// TestLiveOEmbed: the watch and embed URLs of a live stream the gateway has answer an oEmbed
// video whose iframe is the live embed page (sized like the torrent ones); other URLs answer 4xx
// JSON saying why.
func TestLiveOEmbed(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.IngestToken = testIngestToken })
	priv := mustKey(t)
	id := live.StreamIDOfKey(priv)
	if res := putSegment(t, r, id, signSeg(t, priv, live.KindInit, 0, time.Now(), []byte("init")), []byte("init"), nil); res.status != http.StatusCreated {
		t.Fatalf("init: %d %s", res.status, res.body)
	}
	get := func(q url.Values) response { return r.get(t, "/oembed?"+q.Encode(), nil) }
	embed := r.base + "/live/" + id.String() + "/embed"

	for _, c := range []struct {
		page, src    string
		maxW, maxH   string
		w, h         float64
		titleContain string
	}{
		{"/live/" + id.String(), embed, "", "", 640, 360, id.String()},
		{"/live/" + id.String() + "/", embed, "", "", 640, 360, id.String()},
		{"/live/" + id.String() + "/embed", embed, "", "", 640, 360, id.String()},
		{"/live/" + id.String() + "?latency=5", embed + "?latency=5", "", "", 640, 360, id.String()},
		{"/live/" + id.String() + "/embed?latency=2", embed + "?latency=2", "320", "", 320, 180, id.String()},
		{"/live/" + id.String(), embed, "", "90", 160, 90, id.String()},
	} {
		q := url.Values{"url": {r.base + c.page}, "format": {"json"}}
		if c.maxW != "" {
			q.Set("maxwidth", c.maxW)
		}
		if c.maxH != "" {
			q.Set("maxheight", c.maxH)
		}
		res := get(q)
		if res.status != http.StatusOK {
			t.Errorf("oembed %s: %d %s", c.page, res.status, res.body)
			continue
		}
		var o struct {
			Version, Type, ProviderName, ProviderURL, Title, HTML string
			Width, Height                                         float64
		}
		if err := json.Unmarshal(res.body, &o); err != nil {
			t.Fatal(err)
		}
		var raw map[string]any
		_ = json.Unmarshal(res.body, &raw)
		if raw["version"] != "1.0" || raw["type"] != "video" || raw["provider_name"] != "swarmgate" || raw["provider_url"] != r.base+"/" ||
			!strings.Contains(o.Title, c.titleContain) || o.Width != c.w || o.Height != c.h {
			t.Errorf("oembed %s: %s", c.page, res.body)
		}
		if want := `<iframe src="` + strings.ReplaceAll(c.src, "&", "&amp;") + `" width="` + ftoa(c.w) + `" height="` + ftoa(c.h) + `"`; !strings.HasPrefix(o.HTML, want) {
			t.Errorf("oembed %s: html %q, want it to start %q", c.page, o.HTML, want)
		}
	}

	unknown := live.StreamIDOfKey(mustKey(t)).String()
	for _, c := range []struct{ what, page, says string }{
		{"unknown stream", "/live/" + unknown, "no such live stream"},
		{"unknown stream's embed page", "/live/" + unknown + "/embed", "no such live stream"},
		{"not a stream id", "/live/not-a-stream", "stream id"},
		{"upper-case id", "/live/" + strings.ToUpper(id.String()), "stream id"},
		{"empty id", "/live/", "stream id"},
		{"a segment", "/live/" + id.String() + "/0.m4s", "not a /live/<stream>"},
		{"the playlist", "/live/" + id.String() + "/index.m3u8", "not a /live/<stream>"},
		{"below the embed page", "/live/" + id.String() + "/embed/x", "not a /live/<stream>"},
		{"bad latency", "/live/" + id.String() + "?latency=soon", "latency"},
		{"zero latency", "/live/" + id.String() + "/embed?latency=0", "latency"},
		{"latency past the player's", "/live/" + id.String() + "?latency=31", "latency"},
		{"the status API", "/api/live/" + id.String(), "not a /watch/"},
	} {
		res := get(url.Values{"url": {r.base + c.page}})
		wantJSONError(t, "oembed "+c.what, res, http.StatusNotFound)
		var e struct{ Error string }
		if json.Unmarshal(res.body, &e) != nil || !strings.Contains(e.Error, c.says) {
			t.Errorf("oembed %s: %s does not say %q", c.what, res.body, c.says)
		}
	}
	wantJSONError(t, "oembed foreign host", get(url.Values{"url": {"https://example.org/live/" + id.String()}}), http.StatusNotFound)
	wantJSONError(t, "oembed format=xml", get(url.Values{"url": {r.base + "/live/" + id.String()}, "format": {"xml"}}), http.StatusNotImplemented)
	wantJSONError(t, "oembed bad maxheight", get(url.Values{"url": {r.base + "/live/" + id.String()}, "maxheight": {"-3"}}), http.StatusBadRequest)
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
