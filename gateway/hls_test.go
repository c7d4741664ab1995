package gateway

import (
	"bytes"
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
	"github.com/swarmgate/swarmgate/live"
)

// makeFilm has ffmpeg make a test film in dir: 20 s, keyframes every 2 s, the codecs given.
func makeFilm(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	all := append([]string{"-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "20"}, args...)
	if b, err := exec.CommandContext(ctx, "ffmpeg", append(all, path)...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	return path
}

// errorOf reads an API error's message.
func errorOf(res response) string {
	var e struct {
		Error string `json:"error"`
	}
	json.Unmarshal(res.body, &e)
	return e.Error
}

// seedInto seeds path natively (pieces of pieceLength) and adds it to r's gateway by magnet,
// waiting for the metadata; it returns the infohash.
func seedInto(t *testing.T, r *running, path string, pieceLength int64) string {
	t.Helper()
	seeder, err := peertest.SeedPath(path, pieceLength, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(seeder.Close)
	if res := addFromSeeder(t, r, seeder); res.status != http.StatusCreated {
		t.Fatalf("add: %d %s", res.status, res.body)
	}
	ih := seeder.Torrent.InfoHash().HexString()
	waitGotInfo(t, r.g, ih)
	return ih
}

// getProbed GETs an /hls path, asking again while the file is still being probed (503).
func getProbed(t *testing.T, r *running, path string) response {
	t.Helper()
	var res response
	waitFor(t, time.Minute, "the probe, for "+path, func() bool {
		res = r.get(t, path, nil)
		return res.status != http.StatusServiceUnavailable
	})
	return res
}

// TestHLSFromTheSwarm: a file the gateway fetches from a real seeder is served as HLS, remuxed
// (cut at its keyframes, read from the container's index through /stream) and transcoded; each
// segment matches its signed entry in the manifest; bad requests get clear 4xx errors; deleting
// the torrent removes its segments.
func TestHLSFromTheSwarm(t *testing.T) {
	needTools(t, "ffmpeg", "ffmpeg", "ffprobe")
	dir := t.TempDir()
	mkv := makeFilm(t, dir, "film.mkv", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "ac3")
	dataDir := t.TempDir()
	r := startGateway(t, func(c *Config) {
		c.DataDir, c.FFprobe, c.FFmpeg, c.CacheSize = dataDir, "ffprobe", "ffmpeg", 64<<20
	})
	// --cache-size holds pieces and segments together: a quarter for segments.
	if got := r.g.cache.Stats().Capacity; got != 48<<20 {
		t.Errorf("piece cache capacity %d with the transcoder on, want 48 MiB of the 64", got)
	}
	ih := seedInto(t, r, mkv, 16<<10)
	var cfg clientConfig
	json.Unmarshal(r.get(t, "/api/config", nil).body, &cfg)
	if cfg.Transcode != "on" {
		t.Errorf("/api/config transcode %q, want on", cfg.Transcode)
	}
	base := "/hls/" + ih + "/0/"
	playlist := getProbed(t, r, base+"remux/index.m3u8")
	if playlist.status != http.StatusOK || !bytes.Contains(playlist.body, []byte("#EXT-X-ENDLIST")) {
		t.Fatalf("remux playlist: %d %s", playlist.status, playlist.body)
	}
	// Keyframes every 2 s and 4 s segments: ten segments of 4 s but the last.
	if n := bytes.Count(playlist.body, []byte("#EXTINF:4.000000,")); n < 4 {
		t.Errorf("remux playlist has %d 4-second segments:\n%s", n, playlist.body)
	}
	var tv struct {
		Files []fileView `json:"files"`
	}
	if err := json.Unmarshal(r.get(t, "/api/torrents/"+ih, nil).body, &tv); err != nil || len(tv.Files) != 1 || tv.Files[0].Media == nil {
		t.Fatalf("torrent view: %v %+v", err, tv)
	}
	if k := tv.Files[0].Media.Keyframes; k == nil || k.Count != 10 || k.MaxInterval != 2 {
		t.Errorf("keyframe index in the API: %+v, want 10 keyframes 2 s apart", k)
	}
	for _, variant := range []string{"remux", "transcode", "transcode-a1"} {
		seg := r.get(t, base+variant+"/2.ts", nil)
		if seg.status != http.StatusOK || seg.header.Get("Content-Type") != "video/mp2t" || len(seg.body) < 1000 || seg.body[0] != 0x47 {
			t.Fatalf("%s segment 2: %d %q %d bytes %s", variant, seg.status, seg.header.Get("Content-Type"), len(seg.body), errorOf(seg))
		}
		var mf live.Manifest
		if err := json.Unmarshal(r.get(t, base+variant+"/manifest.json", nil).body, &mf); err != nil {
			t.Fatal(err)
		}
		if err := mf.Verify(); err != nil {
			t.Fatalf("%s manifest: %v", variant, err)
		}
		found := false
		for _, e := range mf.Entries {
			if e.Seq == 2 {
				found = true
				if err := live.VerifySegment(e.Entry, seg.body); err != nil {
					t.Errorf("%s segment 2 against its signed entry: %v", variant, err)
				}
			}
		}
		if !found {
			t.Errorf("%s manifest has no entry for segment 2: %+v", variant, mf.Entries)
		}
	}
	if got := r.g.transcoder.Stats().SegmentsMade; got["remux"] == 0 || got["transcode"] == 0 {
		t.Errorf("segments made %v", got)
	}

	for _, c := range []struct {
		path   string
		status int
		says   string
	}{
		{base + "direct/index.m3u8", http.StatusBadRequest, "want remux or transcode"},
		{base + "remux-a7/index.m3u8", http.StatusNotFound, "no such audio stream"},
		{base + "remux/99.ts", http.StatusNotFound, "no segment"},
		{base + "remux/x.ts", http.StatusNotFound, "no segment"},
		{base + "remux/index.mpd", http.StatusNotFound, "want index.m3u8"},
		{base + "subtitles/1.vtt", http.StatusNotFound, "not a text subtitle stream"},
		{"/hls/" + ih + "/5/remux/index.m3u8", http.StatusNotFound, "out of range"},
		{"/hls/" + strings.Repeat("ab", 20) + "/0/remux/index.m3u8", http.StatusNotFound, ""},
	} {
		res := r.get(t, c.path, nil)
		if res.status != c.status || !strings.Contains(errorOf(res), c.says) {
			t.Errorf("GET %s: %d %q, want %d saying %q", c.path, res.status, errorOf(res), c.status, c.says)
		}
	}

	if res := r.do(t, http.MethodDelete, "/api/torrents/"+ih, nil, nil); res.status != http.StatusNoContent {
		t.Fatalf("delete: %d", res.status)
	}
	if left, _ := filepath.Glob(filepath.Join(dataDir, hlsDir, ih+"-*")); len(left) != 0 {
		t.Errorf("segments left after the torrent went: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(dataDir, mediaDir, ih+"-*")); len(left) != 0 {
		t.Errorf("probe or keyframes left after the torrent went: %v", left)
	}
}

// TestHLSPolicy: --transcode remux refuses a transcode with 403 and says why; an AVI (no
// keyframe index) cannot be remuxed (409); without ffmpeg the gateway says at once that it makes
// no HLS.
func TestHLSPolicy(t *testing.T) {
	needTools(t, "ffmpeg", "ffmpeg", "ffprobe")
	dir := t.TempDir()
	avi := makeFilm(t, dir, "old.avi", "-c:v", "mpeg4", "-c:a", "libmp3lame")
	r := startGateway(t, func(c *Config) { c.FFprobe, c.FFmpeg, c.Transcode = "ffprobe", "ffmpeg", "remux" })
	ih := seedInto(t, r, avi, 16<<10)
	res := getProbed(t, r, "/hls/"+ih+"/0/remux/index.m3u8")
	if res.status != http.StatusConflict || !strings.Contains(errorOf(res), "H.264") {
		t.Errorf("remux of MPEG-4 part 2: %d %q, want 409 saying it must be H.264", res.status, errorOf(res))
	}
	// The probe looked for a keyframe index (an AVI keeps none we read) and kept the answer.
	if b, err := os.ReadFile(r.g.keyframesPath(ih, 0)); err != nil || string(b) != "[]" {
		t.Errorf("keyframes of an AVI: %q, %v; want [] kept, so that it is not read again", b, err)
	}
	res = r.get(t, "/hls/"+ih+"/0/transcode/index.m3u8", nil)
	if res.status != http.StatusForbidden || !strings.Contains(errorOf(res), "--transcode remux") {
		t.Errorf("transcode under --transcode remux: %d %q", res.status, errorOf(res))
	}
	r.stop()

	r2 := startGateway(t, func(c *Config) { c.FFprobe, c.FFmpeg = "ffprobe", "no-such-ffmpeg" })
	var cfg clientConfig
	json.Unmarshal(r2.get(t, "/api/config", nil).body, &cfg)
	if cfg.Transcode != "off" {
		t.Errorf("without ffmpeg /api/config says transcode %q", cfg.Transcode)
	}
	res = r2.get(t, "/hls/"+ih+"/0/transcode/index.m3u8", nil)
	if res.status != http.StatusForbidden || !strings.Contains(errorOf(res), "ffmpeg") {
		t.Errorf("HLS without ffmpeg: %d %q", res.status, errorOf(res))
	}
}

// TestShutdownStopsTranscodes: a graceful shutdown with an ffmpeg job paused ahead of its viewer
// (its read of the gateway's own /stream open, and blocked) drains without waiting for it: the
// jobs are the gateway's own requests, not a client's.
func TestShutdownStopsTranscodes(t *testing.T) {
	needTools(t, "ffmpeg", "ffmpeg", "ffprobe")
	// Lossless, so the file is far larger than what the sockets between ffmpeg and /stream
	// buffer: a paused job leaves /stream's handler blocked on its write.
	path := filepath.Join(t.TempDir(), "big.mkv")
	if b, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "200",
		"-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-g", "50", path).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	r := startGateway(t, func(c *Config) { c.FFprobe, c.FFmpeg, c.ShutdownTimeout = "ffprobe", "ffmpeg", 3*time.Second })
	ih := seedInto(t, r, path, 256<<10)
	seg := getProbed(t, r, "/hls/"+ih+"/0/transcode/0.ts")
	if seg.status != http.StatusOK {
		t.Fatalf("segment 0: %d %s", seg.status, errorOf(seg))
	}
	waitFor(t, 2*time.Minute, "the job pausing ahead of its viewer", func() bool { return r.g.transcoder.Stats().JobsPaused == 1 })
	r.stop() // fails the test if Serve reports requests cut off by the drain timeout
}
