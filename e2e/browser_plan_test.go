package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/gateway"
)

// TestBrowserTakesProbedCodecStrings holds the README to its word that the probe's codec strings
// are what MediaSource.isTypeSupported takes: for files a browser plays (H.264/AAC in MP4, VP9/Opus
// in WebM), Chromium's own MediaSource accepts the strings the gateway made, and the watch page,
// given them with its start-up data, decides to play the file as it is.
func TestBrowserTakesProbedCodecStrings(t *testing.T) {
	b := startBrowser(t, browserOptions{name: "plan"})
	for _, name := range []string{"test-h264.mp4", "test-vp9.webm"} {
		t.Run(name, func(t *testing.T) {
			m := seedMediaThroughGateway(t, name, func(c *gateway.Config) { c.FFprobe = "ffprobe" })
			var info struct {
				Container string `json:"container"`
				Video     []struct {
					CodecString string `json:"codec_string"`
				} `json:"video"`
				Audio []struct {
					CodecString string `json:"codec_string"`
				} `json:"audio"`
			}
			if err := json.Unmarshal(waitProbed(t, m.Base, m.InfoHash), &info); err != nil {
				t.Fatal(err)
			}
			if len(info.Video) != 1 || len(info.Audio) != 1 {
				t.Fatalf("probe: %+v", info)
			}
			mime := "video/mp4"
			if strings.HasSuffix(name, ".webm") {
				mime = "video/webm"
			}
			typ := fmt.Sprintf(`%s; codecs="%s, %s"`, mime, info.Video[0].CodecString, info.Audio[0].CodecString)

			b.navigate(m.WatchURL())
			var page struct {
				MSE     bool   `json:"mse"`
				CanPlay string `json:"canPlay"`
				Plan    *struct {
					How string `json:"how"`
					Why string `json:"why"`
				} `json:"plan"`
			}
			waitUntil(t, 30*time.Second, "the watch page's plan", func() (bool, string) {
				expr := fmt.Sprintf(`({mse: MediaSource.isTypeSupported(%q), canPlay: document.createElement("video").canPlayType(%q), plan: window.swarmgate?.plan ?? null})`, typ, typ)
				if err := b.eval(0, expr, &page); err != nil {
					return false, err.Error()
				}
				return page.Plan != nil, "no plan yet"
			})
			if !page.MSE || page.CanPlay == "" {
				t.Errorf("Chromium refuses %s: isTypeSupported %v, canPlayType %q", typ, page.MSE, page.CanPlay)
			}
			if page.Plan.How != "direct" || !strings.Contains(page.Plan.Why, info.Video[0].CodecString) {
				t.Errorf("the page plans %+v for %s, want direct play on those codecs", *page.Plan, typ)
			}
		})
	}
}
