package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmgate/swarmgate/gateway"
	"github.com/swarmgate/swarmgate/internal/gatewaytest"
	"github.com/swarmgate/swarmgate/internal/peertest"
)

func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("SWARMGATE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("test", t.Name())
}

// startGateway starts a loopback gateway (internal/gatewaytest) logging as the test does, its
// config changed first by change (nil: none); it stops at the test's cleanup, or at its Close.
func startGateway(t testing.TB, change func(*gateway.Config)) *gatewaytest.Server {
	t.Helper()
	return gatewaytest.New(t, testLogger(t), change)
}

func startSeeder(t testing.TB, size, pieceLength int64) *peertest.Seeder {
	t.Helper()
	s, err := peertest.NewSeeder(t.TempDir(), "movie.mp4", size, pieceLength, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

type torrentView struct {
	InfoHash string `json:"infohash"`
	State    string `json:"state"`
	Bytes    struct {
		FromNative int64 `json:"from_native"`
		FromWebRTC int64 `json:"from_webrtc"`
		ToNative   int64 `json:"to_native"`
		ToWebRTC   int64 `json:"to_webrtc"`
		ToHTTP     int64 `json:"to_http"`
	} `json:"bytes"`
	Peers struct {
		Native int `json:"native"`
		WebRTC int `json:"webrtc"`
	} `json:"peers"`
}

func addMagnet(t testing.TB, base, magnet string) torrentView {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"magnet": magnet})
	res, err := http.Post(base+"/api/torrents", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("POST /api/torrents: %s %s", res.Status, b)
	}
	var v torrentView
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func getTorrent(t testing.TB, base, ih string) torrentView {
	t.Helper()
	res, err := http.Get(base + "/api/torrents/" + ih)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v torrentView
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// fetchMetainfo gets the .torrent from the gateway as a browser page would, waiting for metadata.
func fetchMetainfo(t testing.TB, base, ih string) *metainfo.MetaInfo {
	t.Helper()
	res, err := http.Get(base + "/api/torrents/" + ih + "/metainfo")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("metainfo: %s %s", res.Status, b)
	}
	mi, err := metainfo.Load(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if want := "ws://" + strings.TrimPrefix(base, "http://") + "/announce"; mi.Announce != want {
		t.Fatalf("metainfo announce = %q, want the gateway's tracker %q", mi.Announce, want)
	}
	return mi
}

func startWebRTCPeer(t testing.TB, base string) *peertest.WebRTCPeer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := peertest.NewWebRTCPeer(ctx, peertest.PeerOptions{
		Dir:        t.TempDir(),
		TrackerURL: gateway.TrackerURL(base),
		Log:        testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// waitComplete waits for a torrent to complete, failing with its progress on timeout.
func waitComplete(t testing.TB, tor *torrent.Torrent, within time.Duration) {
	t.Helper()
	select {
	case <-tor.Complete().On():
	case <-time.After(within):
		t.Fatalf("not complete after %v: %d of %d bytes", within, tor.BytesCompleted(), tor.Length())
	}
}

func downloadedSHA256(t testing.TB, tor *torrent.Torrent) [32]byte {
	t.Helper()
	r := tor.NewReader()
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// A file whose only source is a native TCP peer reaches a WebRTC peer through the gateway, which
// learns of the native peer only from the magnet's x.pe.
func TestNativeSwarmReachesWebRTCPeer(t *testing.T) {
	seeder := startSeeder(t, 6<<20, 64<<10)
	base := startGateway(t, nil).URL
	v := addMagnet(t, base, seeder.Magnet())
	mi := fetchMetainfo(t, base, v.InfoHash)

	peer := startWebRTCPeer(t, base)
	tor, err := peer.Join(mi)
	if err != nil {
		t.Fatal(err)
	}
	waitComplete(t, tor, 60*time.Second)
	if got := downloadedSHA256(t, tor); got != seeder.SHA256 {
		t.Fatalf("sha256 mismatch: got %x want %x", got, seeder.SHA256)
	}
	for _, pc := range tor.PeerConns() {
		if pc.Network != "webrtc" {
			t.Errorf("WebRTC peer has a %q connection; it must only have WebRTC ones", pc.Network)
		}
	}
	after := getTorrent(t, base, v.InfoHash)
	if after.Bytes.FromNative < seeder.Info.TotalLength() || after.Bytes.ToWebRTC < seeder.Info.TotalLength() {
		t.Errorf("gateway byte counts %+v: want from_native and to_webrtc ≥ %d", after.Bytes, seeder.Info.TotalLength())
	}
	if after.Bytes.ToHTTP != 0 {
		t.Errorf("gateway sent %d bytes over HTTP; the peer must get everything over WebRTC", after.Bytes.ToHTTP)
	}
	m := scrapeMetrics(t, base)
	size := float64(seeder.Info.TotalLength())
	for series, atLeast := range map[string]float64{
		`swarmgate_bytes_total{direction="out",kind="webrtc"}`: size,
		`swarmgate_bytes_total{direction="in",kind="native"}`:  size,
		`swarmgate_pieces_total{result="verified"}`:            float64(seeder.Info.NumPieces()),
		`swarmgate_torrents{state="seeding"}`:                  1,
		`swarmgate_signaling_messages_total{kind="announce"}`:  1,
	} {
		if m[series] < atLeast {
			t.Errorf("/metrics %s = %v, want ≥ %v", series, m[series], atLeast)
		}
	}
	if m[`swarmgate_pieces_total{result="failed"}`] != 0 {
		t.Errorf("pieces failed their hash check: %v", m[`swarmgate_pieces_total{result="failed"}`])
	}
}

// A raw peer keeps 256 16 KiB requests outstanding, as webtorrent does; the gateway must answer all
// of them without stalling, including while it is still fetching from the native swarm.
func TestDeepPipeliningNeverStalls(t *testing.T) {
	seeder := startSeeder(t, 8<<20, 256<<10)
	base := startGateway(t, nil).URL
	v := addMagnet(t, base, seeder.Magnet())
	fetchMetainfo(t, base, v.InfoHash) // metadata is there

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	raw, err := peertest.NewWebRTCPeer(ctx, peertest.PeerOptions{TrackerURL: gateway.TrackerURL(base), Raw: true, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn, err := raw.Connect(ctx, seeder.MetaInfo.HashInfoBytes(), seeder.Info.TotalLength())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	data, st, err := peertest.WireDownload(ctx, conn, seeder.MetaInfo.HashInfoBytes(), raw.PeerID(), seeder.Info, 256, 30*time.Second)
	if err != nil {
		t.Fatalf("wire download: %v (stats %+v)", err, st)
	}
	if sha256.Sum256(data) != seeder.SHA256 {
		t.Fatal("sha256 mismatch")
	}
	if st.MaxOutstanding < 250 {
		t.Fatalf("pipeline only reached %d outstanding requests; the test must exercise ≥ 250", st.MaxOutstanding)
	}
}

// Two WebRTC peers: the second gets the file from the first through the gateway's tracker, after
// the gateway itself has dropped the torrent.
func TestWebRTCPeersReshare(t *testing.T) {
	seeder := startSeeder(t, 4<<20, 64<<10)
	base := startGateway(t, nil).URL
	v := addMagnet(t, base, seeder.Magnet())
	mi := fetchMetainfo(t, base, v.InfoHash)

	first := startWebRTCPeer(t, base)
	tor1, err := first.Join(mi)
	if err != nil {
		t.Fatal(err)
	}
	waitComplete(t, tor1, 60*time.Second)

	// Only the first peer has the data now: the gateway drops the torrent and the native seeder
	// goes away.
	req, _ := http.NewRequest(http.MethodDelete, base+"/api/torrents/"+v.InfoHash, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %s", res.Status)
	}
	seeder.Close()

	second := startWebRTCPeer(t, base)
	tor2, err := second.Join(mi)
	if err != nil {
		t.Fatal(err)
	}
	waitComplete(t, tor2, 60*time.Second)
	if got := downloadedSHA256(t, tor2); got != seeder.SHA256 {
		t.Fatalf("sha256 mismatch")
	}
	st := tor1.Stats()
	if up := st.BytesWrittenData.Int64(); up < seeder.Info.TotalLength() {
		t.Fatalf("first peer uploaded %d bytes, want the whole file (%d)", up, seeder.Info.TotalLength())
	}
}

// scrapeMetrics reads /metrics into series → value (series written as in the exposition format).
func scrapeMetrics(t testing.TB, base string) map[string]float64 {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
