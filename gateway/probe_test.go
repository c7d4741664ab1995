package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/internal/peertest"
)

// TestProbeThroughOwnStream: a media file of a torrent the gateway is still fetching is probed
// with ffprobe through the gateway's own /stream (pieces come from a real seeder, verified); the
// API says "probing", then what the file holds; after a restart the probe is read back, not run
// again (the restarted gateway has no ffprobe to run).
func TestProbeThroughOwnStream(t *testing.T) {
	needTools(t, "ffmpeg", "ffmpeg", "ffprobe")
	dir := t.TempDir()
	mkv := filepath.Join(dir, "film.mkv")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3", "-c:v", "libx264", "-c:a", "ac3",
		"-metadata:s:a:0", "language=eng", mkv).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	seeder, err := peertest.SeedPath(mkv, 16<<10, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer seeder.Close()
	dataDir := t.TempDir()
	cfg := func(c *Config) { c.DataDir, c.FFprobe = dataDir, "ffprobe" }
	r := startGateway(t, cfg)
	if res := addFromSeeder(t, r, seeder); res.status != http.StatusCreated {
		t.Fatalf("add: %d %s", res.status, res.body)
	}
	ih := seeder.Torrent.InfoHash().HexString()
	probe := func(r *running) *mediaView {
		var v struct {
			Files []fileView `json:"files"`
		}
		if err := json.Unmarshal(r.get(t, "/api/torrents/"+ih, nil).body, &v); err != nil || len(v.Files) != 1 {
			return nil
		}
		return v.Files[0].Media
	}
	waitGotInfo(t, r.g, ih)
	if m := probe(r); m == nil || (m.State != "probing" && m.State != "done") {
		t.Fatalf("first look: %+v, want probing", m)
	}
	var m *mediaView
	waitFor(t, 60*time.Second, "the probe", func() bool { m = probe(r); return m != nil && m.State != "probing" })
	if m.State != "done" || m.Info == nil || m.Info.Container != "matroska,webm" || len(m.Info.Video) != 1 || len(m.Info.Audio) != 1 ||
		m.Info.Audio[0].CodecString != "ac-3" || m.Info.Audio[0].Language != "eng" || m.Info.Duration < 2.5 {
		t.Fatalf("probe %+v (%+v)", m, m.Info)
	}
	r.stop()

	r2 := startGateway(t, func(c *Config) { cfg(c); c.FFprobe = "no-such-ffprobe" })
	waitGotInfo(t, r2.g, ih)
	if m := probe(r2); m == nil || m.State != "done" || m.Info.Video[0].Codec != "h264" {
		t.Errorf("after a restart: %+v, want the saved probe", m)
	}
	// Removing the torrent removes its probe.
	if res := r2.do(t, http.MethodDelete, "/api/torrents/"+ih, nil, nil); res.status != http.StatusNoContent {
		t.Fatalf("delete: %d", res.status)
	}
	if files, _ := filepath.Glob(filepath.Join(dataDir, mediaDir, "*.json")); len(files) != 0 {
		t.Errorf("probes left after the torrent went: %v", files)
	}
}

// needTools skips the test when a tool it runs is missing, and fails it in CI (CI=true), whose
// .ci/run installs the Debian package named.
func needTools(t *testing.T, pkg string, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not installed, and CI is set: .ci/run must install %s", tool, pkg)
			}
			t.Skipf("%s not installed (apt-get install %s)", tool, pkg)
		}
	}
}

// TestProbeFailureKeepsTokenPrivate: ffprobe's error names the URL it read, the gateway's own
// /stream with its token (ownStreamURL); the API shows the error without the token.
func TestProbeFailureKeepsTokenPrivate(t *testing.T) {
	needTools(t, "ffprobe")
	seeder, err := peertest.NewSeeder(t.TempDir(), "noise.mp4", 256<<10, 16<<10, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer seeder.Close()
	r := startGateway(t, func(c *Config) { c.FFprobe = "ffprobe" })
	if res := addFromSeeder(t, r, seeder); res.status != http.StatusCreated {
		t.Fatalf("add: %d %s", res.status, res.body)
	}
	ih := seeder.Torrent.InfoHash().HexString()
	var m *mediaView
	waitFor(t, time.Minute, "the probe of random bytes to fail", func() bool {
		var v struct {
			Files []fileView `json:"files"`
		}
		if json.Unmarshal(r.get(t, "/api/torrents/"+ih, nil).body, &v) != nil || len(v.Files) != 1 {
			return false
		}
		m = v.Files[0].Media
		return m != nil && m.State == "failed"
	})
	if !strings.Contains(m.Error, "/stream/"+ih) {
		t.Fatalf("ffprobe's error %q does not name the URL it read: nothing to redact here", m.Error)
	}
	if strings.Contains(m.Error, r.g.ownToken) {
		t.Errorf("the probe's error shows the gateway's own token: %q", m.Error)
	}
}
