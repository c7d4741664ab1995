package gateway

import "github.com/anacrolix/torrent"

// uplinkBusy says whether the upload cap is reached now: its bucket is below half its burst, so
// sends wait their turns. False without a cap. It must not block (upload sharing calls it with
// the torrent client's lock held).
//
// While it is busy, upload sharing offers browsers the pieces no other browser holds first
// (third_party/README.md, "Upload sharing"), and the watch and embed pages are rendered without
// the quick start: its bytes come again over webtorrent, and under a saturated cap an HTTP stream
// gets one turn among all the peer conns, slower than the video (BenchmarkOffload).
func (g *Gateway) uplinkBusy() bool {
	return g.uploadLimit != nil && g.uploadLimit.Tokens() < uploadBurst/2
}

// UploadSharingStats is what upload sharing has done so far (Config.UploadSharing): pieces
// offered to browsers fresh or at their front, requests rejected.
func (g *Gateway) UploadSharingStats() torrent.UploadSharingStats {
	return g.client.UploadSharingStats()
}
