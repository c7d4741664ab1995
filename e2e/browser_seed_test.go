package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/gateway"
)

// seedInPageJS makes a file of random bytes in the page and seeds it with webtorrent through the
// gateway's tracker only, with webtorrent's own timing (it re-announces every 120 s, the interval
// the tracker sends). It sets window.seeded = {infoHash, sha256, length} once seeding, or
// window.seedError.
const seedInPageJS = `(() => {
  window.seeded = null
  window.seedError = ''
  ;(async () => {
    const { default: WebTorrent } = await import('/static/vendor/webtorrent.min.js')
    const size = %d
    const bytes = new Uint8Array(size)
    for (let i = 0; i < size; i += 65536) crypto.getRandomValues(bytes.subarray(i, Math.min(i + 65536, size)))
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))
    const sha256 = Array.from(digest, b => b.toString(16).padStart(2, '0')).join('')
    const client = new WebTorrent({ tracker: { rtcConfig: { iceServers: [] } } })
    window.seedClient = client
    client.on('error', err => { window.seedError = String(err) })
    const tracker = %q
    client.seed(new File([bytes], 'from-the-browser.bin'), { announce: [tracker], announceList: [[tracker]] }, torrent => {
      window.seeded = { infoHash: torrent.infoHash, sha256, length: size }
    })
  })().catch(err => { window.seedError = String(err) })
  return true
})()`

// A file that only a webtorrent page in Chromium has, seeding it and announced to the gateway's
// tracker before the gateway knows the torrent: added to the gateway by infohash alone, it streams
// from /stream whole and byte-identical long before the page's next announce (120 s). The gateway
// has to offer to the page itself; the page's own offers went out with its first announce, when
// the swarm held nobody to take them.
func TestBrowserSeededFileStreams(t *testing.T) {
	srv := startGateway(t, nil)
	base := srv.URL
	t.Cleanup(func() {
		if t.Failed() {
			var status strings.Builder
			srv.Gateway.Client().WriteStatus(&status)
			t.Logf("the gateway's torrent client:\n%s", status.String())
		}
	})
	b := startBrowser(t, browserOptions{name: "seeding page"})
	b.navigate(base + "/")
	const size = 3<<20 + 12345
	if err := b.eval(0, fmt.Sprintf(seedInPageJS, size, gateway.TrackerURL(base)), nil); err != nil {
		t.Fatalf("start seeding: %v", err)
	}
	var seeded struct {
		InfoHash string `json:"infoHash"`
		SHA256   string `json:"sha256"`
		Length   int64  `json:"length"`
	}
	waitUntil(t, 30*time.Second, "the page seeds", func() (bool, string) {
		var st struct {
			Seeded *struct {
				InfoHash string `json:"infoHash"`
				SHA256   string `json:"sha256"`
				Length   int64  `json:"length"`
			} `json:"seeded"`
			Err string `json:"err"`
		}
		if err := b.eval(0, `({seeded: window.seeded, err: window.seedError})`, &st); err != nil {
			return false, err.Error()
		}
		if st.Err != "" {
			t.Fatalf("page failed to seed: %s", st.Err)
		}
		if st.Seeded == nil {
			return false, "not seeding yet"
		}
		seeded = *st.Seeded
		return true, ""
	})
	waitUntil(t, 30*time.Second, "the page's announce reaches the gateway's tracker", func() (bool, string) {
		n := scrapeMetrics(t, base)[`swarmgate_signaling_messages_total{kind="announce"}`]
		return n >= 1, fmt.Sprintf("%v announces", n)
	})

	start := time.Now()
	v := addMagnet(t, base, "magnet:?xt=urn:btih:"+seeded.InfoHash)
	client := &http.Client{Timeout: 30 * time.Second}
	// Both ends of the transfer, for a failure's message (it failed once in a loaded full run:
	// the body stalled).
	sides := func() string {
		var g struct {
			State    string           `json:"state"`
			Progress float64          `json:"progress"`
			Peers    map[string]int   `json:"peers"`
			Bytes    map[string]int64 `json:"bytes"`
		}
		if res, err := http.Get(base + "/api/torrents/" + v.InfoHash); err == nil {
			_ = json.NewDecoder(res.Body).Decode(&g)
			res.Body.Close()
		}
		var page any
		_ = b.eval(0, `(() => { const t = window.seedClient?.torrents[0]; return t ? {wires: t.wires.length, uploaded: t.uploaded, uploadSpeed: t.uploadSpeed, done: t.done} : null })()`, &page)
		return fmt.Sprintf("gateway: %s, progress %.3f, peers %v, bytes %v; page: %v", g.State, g.Progress, g.Peers, g.Bytes, page)
	}
	var got []byte
	waitUntil(t, 60*time.Second, "the whole file through /stream", func() (bool, string) {
		res, err := client.Get(base + "/stream/" + v.InfoHash + "/0")
		if err != nil {
			return false, err.Error() + "; " + sides()
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			return false, "reading: " + err.Error() + "; " + sides()
		}
		if res.StatusCode != http.StatusOK {
			return false, res.Status + " " + string(body)
		}
		got = body
		return true, ""
	})
	t.Logf("streamed %d bytes %v after the add", len(got), time.Since(start).Round(time.Millisecond))
	sum := sha256.Sum256(got)
	if int64(len(got)) != seeded.Length || hex.EncodeToString(sum[:]) != seeded.SHA256 {
		t.Fatalf("streamed %d bytes (sha256 %x); the page seeded %d (sha256 %s)", len(got), sum, seeded.Length, seeded.SHA256)
	}
	after := getTorrent(t, base, v.InfoHash)
	if after.Bytes.FromWebRTC < seeded.Length {
		t.Errorf("gateway got %d bytes over WebRTC, want the whole file (%s): %+v", after.Bytes.FromWebRTC, strconv.FormatInt(seeded.Length, 10), after.Bytes)
	}
}
