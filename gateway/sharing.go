package gateway

import (
	"time"

	"github.com/anacrolix/torrent"
)

// uplinkBusy says whether the upload cap is reached now: its bucket is below half its burst, so
// sends wait their turns. False without a cap. It must not block (upload sharing calls it with
// the torrent client's lock held).
//
// While it is busy, upload sharing offers browsers the pieces no other browser holds first
// (third_party/README.md, "Upload sharing"), and, for uplinkCalmFor after too
// (uplinkBusyLately), the watch and embed pages are rendered without the quick start: its bytes
// come again over webtorrent, and under a saturated cap an HTTP stream gets one turn among all
// the peer conns, slower than the video (BenchmarkOffload).
func (g *Gateway) uplinkBusy() bool {
	return g.uploadLimit != nil && g.uploadLimit.Tokens() < uploadBurst/2
}

// uplinkCalmFor is how long the cap must have had room before pages start with the quick start
// again: a swarm under the cap fills it in bursts, and a page rendered in a lull got the quick
// start and then shared the cap with every peer conn (three of ten watch pages, BenchmarkOffload).
const uplinkCalmFor = 10 * time.Second

// uplinkLookEvery is how often the gateway looks at the cap (noteUplink), so that
// uplinkBusyLately knows when it was last reached whether or not a page or upload sharing asked
// meanwhile.
const uplinkLookEvery = 250 * time.Millisecond

// noteUplink remembers when the cap was last seen reached (every uplinkLookEvery).
func (g *Gateway) noteUplink() {
	if g.uplinkBusy() {
		g.uplinkBusyAt.Store(time.Now().UnixNano())
	}
}

// uplinkBusyLately says whether the upload cap is reached now or was within uplinkCalmFor.
func (g *Gateway) uplinkBusyLately() bool {
	return g.uplinkBusy() || time.Since(time.Unix(0, g.uplinkBusyAt.Load())) < uplinkCalmFor
}

// UploadSharingStats is what upload sharing has done so far (Config.UploadSharing): pieces
// offered to browsers fresh or at their front, requests rejected.
func (g *Gateway) UploadSharingStats() torrent.UploadSharingStats {
	return g.client.UploadSharingStats()
}
