package gateway

import (
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/internal/peertest"
	"github.com/swarmgate/swarmgate/internal/trackerclient"
	"github.com/swarmgate/swarmgate/signaling"
)

// scrape reads /metrics into series → value, series written as in the exposition format (labels
// sorted by name).
func scrape(t *testing.T, r *running) map[string]float64 {
	t.Helper()
	res := r.get(t, "/metrics", nil)
	if res.status != http.StatusOK {
		t.Fatalf("/metrics: %d", res.status)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(res.body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

// waitMetric scrapes until ok holds for the series' value, or fails the test after a bound.
func waitMetric(t *testing.T, r *running, series string, ok func(float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		m := scrape(t, r)
		if ok(m[series]) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics %s = %v, never what the test waits for", series, m[series])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMetricsAfterTransfer: after a torrent came from a native seeder and went out over /stream,
// and a tracker client announced, /metrics says so in every series of the list; after the
// torrent is removed its bytes and pieces stay counted.
func TestMetricsAfterTransfer(t *testing.T) {
	const size, pieceLen = 500_000, 32 << 10
	const pieces = (size + pieceLen - 1) / pieceLen
	seeder, err := peertest.NewSeeder(t.TempDir(), "clip.mp4", size, pieceLen, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(seeder.Close)
	r := startGateway(t, nil)
	t.Cleanup(r.stop)

	m := scrape(t, r)
	for series, want := range map[string]float64{
		`swarmgate_torrents{state="seeding"}`:                 0,
		`swarmgate_peers{kind="native"}`:                      0,
		`swarmgate_peers{kind="webrtc"}`:                      0,
		`swarmgate_bytes_total{direction="in",kind="native"}`: 0,
		`swarmgate_pieces_total{result="verified"}`:           0,
		`swarmgate_signaling_sockets`:                         0,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("before: %s = %v (present %v), want %v", series, got, ok, want)
		}
	}

	res := addFromSeeder(t, r, seeder)
	if res.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", res.status, res.body)
	}
	ih := seeder.Torrent.InfoHash().HexString()
	waitGotInfo(t, r.g, ih)
	// A first range makes the torrent wanted, so the gateway dials the seeder.
	if res := r.get(t, "/stream/"+ih+"/0", map[string]string{"Range": "bytes=0-999"}); res.status != http.StatusPartialContent {
		t.Fatalf("first range: %d", res.status)
	}
	waitMetric(t, r, `swarmgate_peers{kind="native"}`, func(v float64) bool { return v >= 1 })
	res = r.get(t, "/stream/"+ih+"/0", nil)
	if res.status != http.StatusOK || sha256.Sum256(res.body) != seeder.SHA256 {
		t.Fatalf("stream: %d, digest right %v", res.status, sha256.Sum256(res.body) == seeder.SHA256)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var peerID signaling.ID
	copy(peerID[:], "-WW0000-metricstest1")
	cl, err := trackerclient.Dial(ctx, "ws://"+r.g.Addr().String()+"/announce", peerID, trackerclient.Handlers{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Announce(ctx, trackerclient.AnnounceParams{InfoHash: signaling.ID(seeder.Torrent.InfoHash()), Event: "started", Left: size}); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, r, `swarmgate_signaling_messages_total{kind="announce"}`, func(v float64) bool { return v >= 1 })
	m = waitMetric(t, r, `swarmgate_torrents{state="seeding"}`, func(v float64) bool { return v == 1 })

	for series, check := range map[string]func(float64) bool{
		`swarmgate_torrents{state="metadata"}`:                                     eq(0),
		`swarmgate_torrents{state="idle"}`:                                         eq(0),
		`swarmgate_torrents{state="downloading"}`:                                  eq(0),
		`swarmgate_peers{kind="webrtc"}`:                                           eq(0),
		`swarmgate_bytes_total{direction="in",kind="native"}`:                      atLeast(size),
		`swarmgate_bytes_total{direction="in",kind="webrtc"}`:                      eq(0),
		`swarmgate_bytes_total{direction="in",kind="webseed"}`:                     eq(0),
		`swarmgate_bytes_total{direction="out",kind="http"}`:                       atLeast(size),
		`swarmgate_bytes_total{direction="out",kind="webrtc"}`:                     eq(0),
		`swarmgate_pieces_total{result="verified"}`:                                atLeast(pieces),
		`swarmgate_pieces_total{result="failed"}`:                                  eq(0),
		`swarmgate_signaling_sockets`:                                              eq(1),
		`swarmgate_signaling_swarms`:                                               eq(1),
		`swarmgate_signaling_peers`:                                                eq(1),
		`swarmgate_signaling_messages_total{kind="announce"}`:                      eq(1),
		`swarmgate_signaling_failures_total`:                                       eq(0),
		`swarmgate_webrtc_peer_connections`:                                        eq(0),
		`swarmgate_webrtc_peer_connections_disconnected`:                           eq(0),
		`swarmgate_http_requests_total{code="201",route="/api/torrents"}`:          eq(1),
		`swarmgate_http_requests_total{code="200",route="/stream/:ih/:file"}`:      eq(1),
		`swarmgate_http_requests_total{code="206",route="/stream/:ih/:file"}`:      eq(1),
		`swarmgate_http_request_duration_seconds_count{route="/stream/:ih/:file"}`: eq(2),
	} {
		if v, ok := m[series]; !ok || !check(v) {
			t.Errorf("after the transfer: %s = %v (present %v)", series, v, ok)
		}
	}

	// Removed: gauges drop, counters stay.
	if res := r.do(t, http.MethodDelete, "/api/torrents/"+ih, nil, nil); res.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", res.status, res.body)
	}
	after := scrape(t, r)
	for _, series := range []string{`swarmgate_bytes_total{direction="in",kind="native"}`, `swarmgate_bytes_total{direction="out",kind="http"}`,
		`swarmgate_pieces_total{result="verified"}`} {
		if after[series] < m[series] {
			t.Errorf("after DELETE: %s went back from %v to %v", series, m[series], after[series])
		}
	}
	if v := after[`swarmgate_torrents{state="seeding"}`]; v != 0 {
		t.Errorf("after DELETE: seeding torrents %v", v)
	}
}

func eq(want float64) func(float64) bool      { return func(v float64) bool { return v == want } }
func atLeast(want float64) func(float64) bool { return func(v float64) bool { return v >= want } }

// With MetricsAddr, /metrics answers on its own listener and the public one no longer serves it.
func TestMetricsOnTheirOwnListener(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.MetricsAddr = "127.0.0.1:0" })
	if res := r.get(t, "/metrics", nil); res.status != http.StatusNotFound {
		t.Errorf("/metrics on the public listener: %d, want 404", res.status)
	}
	res, err := http.Get("http://" + r.g.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "swarmgate_torrents") {
		t.Fatalf("/metrics on the metrics listener: %d %.200s", res.StatusCode, body)
	}
	if res := r.get(t, "/healthz", nil); res.status != http.StatusOK {
		t.Errorf("/healthz: %d", res.status)
	}
}
