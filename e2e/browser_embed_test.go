package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"

	"github.com/swarmgate/swarmgate/gateway"
)

// 4. The embed page plays inside an iframe on another origin, both as a plain <iframe> and through
// embed.js's <swarm-player>; with EmbedOrigins set, a page on an origin not in the list cannot
// frame it (CSP frame-ancestors).
func TestBrowserEmbed(t *testing.T) {
	var gwBase, ih string // known once the gateway runs; the hosts below only serve after that
	host := http.NewServeMux()
	host.HandleFunc("/iframe.html", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>host: iframe</title>
<h1>A page on another origin</h1>
<iframe id="embed" src="%s/embed/%s?file=0" width="640" height="360" style="border:0" allow="autoplay; fullscreen" allowfullscreen></iframe>`, gwBase, ih)
	})
	host.HandleFunc("/element.html", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>host: element</title>
<h1>A page on another origin</h1>
<script src="%s/embed.js"></script>
<swarm-player infohash="%s" file="0"></swarm-player>`, gwBase, ih)
	})
	allowed := httptest.NewServer(host)
	t.Cleanup(allowed.Close)
	refused := httptest.NewServer(host)
	t.Cleanup(refused.Close)

	m := seedMediaThroughGateway(t, "test-h264.mp4", func(c *gateway.Config) { c.EmbedOrigins = []string{allowed.URL} })
	gwBase, ih = m.Base, m.InfoHash
	b := startBrowser(t, browserOptions{name: "host"})
	embedded := func() runtime.ExecutionContextID { return b.frameContext(m.Base) }

	for _, page := range []string{"iframe.html", "element.html"} {
		t.Run(page, func(t *testing.T) {
			b.navigate(allowed.URL + "/" + page)
			v := b.waitView(45*time.Second, embedded, "embedded player plays", playingCond(t))
			checkPlayingView(t, v, m, "")
			t.Logf("playing: %v", v)
			b.waitView(20*time.Second, embedded, "embedded video passes 1 s", advancedCond(t, 1))
		})
	}

	t.Run("refused origin", func(t *testing.T) {
		b.navigate(refused.URL + "/iframe.html")
		var blocked, violation string
		waitUntil(t, 15*time.Second, "the iframe is blocked and a CSP frame-ancestors violation reported", func() (bool, string) {
			for _, f := range b.frames() {
				if f.ParentID != "" && strings.HasPrefix(f.URL, "chrome-error://") {
					blocked = fmt.Sprintf("frame %s shows %s in place of %s", f.ID, f.URL, f.UnreachableURL)
				}
			}
			for _, l := range b.consoleLines() {
				if strings.Contains(l, "frame-ancestors") {
					violation = l
				}
			}
			return blocked != "" && violation != "", fmt.Sprintf("blocked frame: %q, violation: %q", blocked, violation)
		})
		t.Logf("%s; console: %s", blocked, violation)
		if id := b.frameContext(m.Base); id != 0 {
			v, err := b.view(id)
			t.Errorf("a document of the gateway's origin loaded in a refused frame: %v %v", v, err)
		}
	})
}
