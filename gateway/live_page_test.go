package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/swarmgate/swarmgate/live"
)

// TestLivePage: /live/{stream} is the live watch page for any stream (the page itself says when the
// gateway does not have it), with the stream id and the gateway's tracker and ICE servers as boot
// data; the origin's routes under it are untouched, and a hostile name comes back escaped.
func TestLivePage(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.IngestToken = testIngestToken })
	id := live.StreamIDOfKey(mustKey(t)).String()
	res := r.get(t, "/live/"+id, nil)
	if res.status != http.StatusOK || !strings.EqualFold(res.header.Get("Content-Type"), "text/html; charset=utf-8") {
		t.Fatalf("live page: %d %v", res.status, res.header)
	}
	for _, want := range []string{`src="/static/live.js"`, `href="/live/` + id + `/index.m3u8"`} {
		if !bytes.Contains(res.body, []byte(want)) {
			t.Errorf("live page lacks %s:\n%s", want, res.body)
		}
	}
	m := regexp.MustCompile(`(?s)<script type="application/json" id="swarmgate-boot">(.*?)</script>`).FindSubmatch(res.body)
	if m == nil {
		t.Fatalf("live page has no boot data:\n%s", res.body)
	}
	var boot struct {
		Stream string       `json:"stream"`
		Config clientConfig `json:"config"`
	}
	if err := json.Unmarshal(m[1], &boot); err != nil || boot.Stream != id || boot.Config.TrackerURL != TrackerURL(r.base) || boot.Config.ICEServers == nil {
		t.Errorf("boot data %s: %v", m[1], err)
	}
	// The origin still answers below the page.
	if res := r.get(t, "/live/"+id+"/index.m3u8", nil); res.status != http.StatusNotFound || bytes.Contains(res.body, []byte("<html")) {
		t.Errorf("playlist of an unknown stream: %d %.200s", res.status, res.body)
	}
	if res := r.get(t, "/live/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", nil); res.status != http.StatusOK || bytes.Contains(res.body, []byte("<img")) {
		t.Errorf("live page of a hostile name: %d %s", res.status, res.body)
	}
	for _, asset := range []string{"/static/live.js", "/static/vendor/live.min.js"} {
		if res := r.get(t, asset, nil); res.status != http.StatusOK || res.header.Get("Content-Type") != "text/javascript; charset=utf-8" {
			t.Errorf("%s: %d %v", asset, res.status, res.header)
		}
	}
}
