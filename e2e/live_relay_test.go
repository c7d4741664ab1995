package e2e

import (
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/gateway"
)

// TestLiveRelayToBrowsers: ffmpeg's test source → live.Broadcast → an origin gateway → a relay
// gateway on another port (serve --relay), which gets every segment over BitTorrent → two
// Chromium viewers on the relay: both play, and the second gets segments from the first over
// WebRTC, verified against the broadcaster's signatures. The origin serves no segment bytes over
// HTTP at all: everything the viewers play came through BitTorrent and their own swarm.
func TestLiveRelayToBrowsers(t *testing.T) {
	needDefaultRoute(t)
	ls := startLive(t, liveOptions{seconds: 120})
	origin, id := ls.base, ls.id
	relay := startGateway(t, func(c *gateway.Config) { c.Relays = []string{origin + "/live/" + id.String()} }).URL
	waitUntil(t, 30*time.Second, "the relay holding 3 media segments", func() (bool, string) {
		st, err := getLiveStatus(relay, id)
		if err != nil {
			return false, err.Error()
		}
		return st.Window.Media >= 3, st.State
	})

	a := startBrowser(t, browserOptions{name: "viewer-a"})
	b := startBrowser(t, browserOptions{name: "viewer-b"})
	u := relay + "/live/" + id.String()
	a.watchLive(u + "?latency=2")
	b.watchLive(u + "?latency=8")
	s := b.waitLive(60*time.Second, "b getting verified segments from a", func(s liveState) bool {
		return s.SG.Stats.FromBrowsers > 0 && s.SG.Stats.Verified > 0
	})
	if s.SG.Stats.Rejected != 0 {
		t.Errorf("b rejected %v segments from a, an honest peer", s.SG.Stats.Rejected)
	}
	from := s.CurrentTime
	b.waitLive(20*time.Second, "b still playing", func(s liveState) bool { return s.CurrentTime > from+2 })

	originSt, err := getLiveStatus(origin, id)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := getLiveStatus(relay, id)
	if err != nil {
		t.Fatal(err)
	}
	if originSt.BytesOutHTTP != 0 {
		t.Errorf("the origin served %d segment bytes over HTTP; the relay must fetch over BitTorrent only", originSt.BytesOutHTTP)
	}
	if rs.Relay == nil || rs.Relay.Fetched < 5 || rs.BytesOutHTTP == 0 {
		t.Fatalf("relay: %+v, %d bytes served over HTTP", rs.Relay, rs.BytesOutHTTP)
	}
	if rs.BrowserPeers != 2 || originSt.BrowserPeers != 0 {
		t.Errorf("browser peers: %d on the relay (want the 2 viewers), %d on the origin (want 0)", rs.BrowserPeers, originSt.BrowserPeers)
	}
	t.Logf("viewer b: %v; relay fetched %d segments (%d bytes) over BitTorrent, skipped %d", s, rs.Relay.Fetched, rs.Relay.FetchedBytes, rs.Relay.Skipped)
}
