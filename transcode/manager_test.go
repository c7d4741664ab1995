package transcode

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/live"
	"github.com/swarmgate/swarmgate/media"
)

// need skips without a tool outside CI, and fails in CI, where .ci/run installs it.
func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not installed (CI installs ffmpeg)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

// makeMedia has ffmpeg make a test file of seconds length, 25 fps, a keyframe every 2 s.
func makeMedia(t testing.TB, name string, seconds int, codecArgs ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	args := []string{"-v", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(seconds)}
	args = append(append(args, codecArgs...), path)
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return path
}

// serveFile serves path over real HTTP with ranges, as the gateway's /stream does, counting
// requests.
func serveFile(t testing.TB, path string) (string, *atomic.Int64) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.ServeFile(w, r, path)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(path), &requests
}

func probe(t testing.TB, path string) *media.Info {
	t.Helper()
	info, err := media.Probe(context.Background(), "ffprobe", path)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// ffprobeKeyframes is the ground truth for keyframe times: ffprobe decoding only keyframes.
func ffprobeKeyframes(t testing.TB, path string) []float64 {
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-skip_frame", "nokey",
		"-show_entries", "frame=pts_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var kf []float64
	for _, line := range strings.Fields(string(out)) {
		f, err := strconv.ParseFloat(strings.Trim(line, ","), 64)
		if err == nil {
			kf = append(kf, f)
		}
	}
	return kf
}

func newManager(t testing.TB, change func(*Config)) *Manager {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Key = key
	if change != nil {
		change(&cfg)
	}
	m, err := New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// firstVideoPTS is the first video timestamp in a segment file.
func firstVideoPTS(t testing.TB, path string) float64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time",
		"-read_intervals", "%+#1", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	f, err := strconv.ParseFloat(strings.Trim(strings.TrimSpace(string(out)), ","), 64)
	if err != nil {
		t.Fatalf("%s: first pts %q: %v", path, out, err)
	}
	return f
}

func segment(t testing.TB, v *Variant, i int) (string, live.SignedEntry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path, e, err := v.Segment(ctx, i)
	if err != nil {
		t.Fatalf("segment %d: %v", i, err)
	}
	return path, e
}

// checkSigned verifies a segment's signed entry against the variant's stream id and its bytes.
func checkSigned(t testing.TB, v *Variant, path string, e live.SignedEntry) {
	t.Helper()
	if err := live.Verify(v.StreamID(), e); err != nil {
		t.Fatalf("entry %d: %v", e.Seq, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := live.VerifySegment(e.Entry, data); err != nil {
		t.Fatalf("segment %d against its entry: %v", e.Seq, err)
	}
}

// TestSeekJobsCutTheSameSegments: a job started at a seek makes segments that line up with the
// ones a job from the start makes (same timestamps), for a transcode and for a remux cut at the
// source's keyframes; each segment is signed, and a restart takes the cache as it is.
func TestSeekJobsCutTheSameSegments(t *testing.T) {
	need(t, "ffmpeg", "ffprobe")
	src := makeMedia(t, "h264-ac3.mkv", 40, "-c:v", "libx264", "-preset", "ultrafast", "-g", "50",
		"-pix_fmt", "yuv420p", "-c:a", "ac3", "-b:a", "96k")
	info := probe(t, src)
	url, _ := serveFile(t, src)
	kf := ffprobeKeyframes(t, src)
	var indexReads atomic.Int64
	source := Source{URL: url, Info: info, Keyframes: func() ([]float64, error) { indexReads.Add(1); return kf, nil }}

	for _, mode := range []Mode{Transcode, Remux} {
		t.Run(string(mode), func(t *testing.T) {
			dir := t.TempDir()
			fromStart := newManager(t, func(c *Config) { c.Dir = filepath.Join(dir, "a") })
			seeking := newManager(t, func(c *Config) { c.Dir = filepath.Join(dir, "b") })
			a, err := fromStart.Variant("00aa", 0, mode, -1, source)
			if err != nil {
				t.Fatal(err)
			}
			b, err := seeking.Variant("00aa", 0, mode, -1, source)
			if err != nil {
				t.Fatal(err)
			}
			// Asked again (every segment request asks), the variant is the one made: the index is
			// not read again.
			reads := indexReads.Load()
			same, err := fromStart.Variant("00aa", 0, mode, -1, source)
			if err != nil {
				t.Fatal(err)
			}
			if same.v != a.v {
				t.Fatal("asked again, the manager made a second variant")
			}
			if got := indexReads.Load(); got != reads {
				t.Errorf("asking for a known variant read the keyframe index again (%d reads, then %d)", reads, got)
			}
			if a.StreamID() == b.StreamID() {
				t.Fatal("two managers with different keys gave one variant the same stream id")
			}
			n := a.Layout().Segments()
			if n < 8 {
				t.Fatalf("%d segments for 40 s", n)
			}
			seek := n * 3 / 4
			for i := seek; i < seek+2; i++ {
				pb, eb := segment(t, b, i)
				checkSigned(t, b, pb, eb)
			}
			for i := 0; i < seek+2; i++ {
				pa, ea := segment(t, a, i)
				checkSigned(t, a, pa, ea)
				if i >= seek {
					pb := filepath.Join(dir, "b", filepath.Base(filepath.Dir(pa)), strconv.Itoa(i)+".ts")
					ta, tb := firstVideoPTS(t, pa), firstVideoPTS(t, pb)
					if d := ta - tb; d > 0.002 || d < -0.002 {
						t.Errorf("segment %d starts at %.3f s from the start's job, %.3f s from the seek's", i, ta, tb)
					}
				}
			}
			if got := fromStart.Stats().JobsStarted; got != 1 {
				t.Errorf("%d jobs for segments in order, want 1", got)
			}
			// The segment's first frame is where the playlist says it starts (+ the MPEG-TS
			// muxer's constant 1.4 s).
			p5, _ := segment(t, a, 5)
			if want, got := a.Layout().Bounds[5]+1.4, firstVideoPTS(t, p5); got < want-0.05 || got > want+0.05 {
				t.Errorf("segment 5 starts at %.3f, the playlist puts it at %.3f (+1.4)", got, want)
			}
			fromStart.Close()

			// A restart serves what is on disk without ffmpeg.
			again := newManager(t, func(c *Config) { c.Dir = filepath.Join(dir, "a"); c.Key = fromStart.cfg.Key })
			v, err := again.Variant("00aa", 0, mode, -1, source)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(v.Manifest().Entries); got < seek+2 {
				t.Errorf("after a restart the manifest has %d entries, want %d", got, seek+2)
			}
			segment(t, v, 1)
			if got := again.Stats().JobsStarted; got != 0 {
				t.Errorf("a cached segment started %d jobs after a restart", got)
			}
		})
	}
}

// TestTamperedCacheIsRemade: a segment changed on disk does not match its signed entry: it is
// made again rather than served.
func TestTamperedCacheIsRemade(t *testing.T) {
	need(t, "ffmpeg", "ffprobe")
	src := makeMedia(t, "a.mp4", 12, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac")
	url, _ := serveFile(t, src)
	source := Source{URL: url, Info: probe(t, src)}
	dir := t.TempDir()
	m := newManager(t, func(c *Config) { c.Dir = dir })
	v, err := m.Variant("00bb", 0, Transcode, -1, source)
	if err != nil {
		t.Fatal(err)
	}
	path, _ := segment(t, v, 1)
	m.Close()
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append(data, 0x47), 0o644); err != nil {
		t.Fatal(err)
	}
	m2 := newManager(t, func(c *Config) { c.Dir = dir; c.Key = m.cfg.Key })
	v2, _ := m2.Variant("00bb", 0, Transcode, -1, source)
	p, e := segment(t, v2, 1)
	checkSigned(t, v2, p, e)
	if m2.Stats().JobsStarted != 1 {
		t.Errorf("the tampered segment was served from the cache (%d jobs)", m2.Stats().JobsStarted)
	}
}

// TestJobsPauseStopAndRefuse: a job stops making segments once it is Ahead past the furthest
// asked for; over MaxJobs a request is refused with ErrBusy while the other variant is read; a
// variant nobody reads loses its job.
func TestJobsPauseStopAndRefuse(t *testing.T) {
	need(t, "ffmpeg", "ffprobe")
	src := makeMedia(t, "long.mp4", 60, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac")
	url, _ := serveFile(t, src)
	source := Source{URL: url, Info: probe(t, src)}
	m := newManager(t, func(c *Config) { c.MaxJobs = 1; c.Ahead = 2; c.IdleTimeout = 2 * time.Second })
	v, err := m.Variant("00cc", 0, Transcode, -1, source)
	if err != nil {
		t.Fatal(err)
	}
	segment(t, v, 0)
	waitFor(t, "the job pauses ahead of its viewer", func() bool { return m.Stats().JobsPaused == 1 })
	if made := len(v.Manifest().Entries); made > 4 {
		t.Errorf("%d segments made for a viewer at segment 0 with Ahead 2", made)
	}

	// Another file's variant: the paused job gives its slot up.
	other, err := m.Variant("00dd", 0, Transcode, -1, source)
	if err != nil {
		t.Fatal(err)
	}
	segment(t, other, 3)
	// While other is read, a third variant finds no slot.
	third, _ := m.Variant("00ee", 0, Transcode, -1, source)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := third.Segment(ctx, 0); !errors.Is(err, ErrBusy) {
		t.Fatalf("a third variant over MaxJobs 1: %v, want ErrBusy", err)
	}
	if m.Stats().Refused != 1 {
		t.Errorf("refused %d, want 1", m.Stats().Refused)
	}
	// Nobody reads: the job goes.
	waitFor(t, "the idle job stops", func() bool { return m.Stats().JobsRunning == 0 })
}

// TestHardwareFallsBackToSoftware: a hardware encoder this machine lacks fails the first job;
// the segment is made in software and the failure counted.
func TestHardwareFallsBackToSoftware(t *testing.T) {
	need(t, "ffmpeg", "ffprobe")
	if _, err := os.Stat("/dev/dri/renderD128"); err == nil {
		t.Skip("this machine has a VAAPI device: the fallback is not what would run")
	}
	src := makeMedia(t, "a.mp4", 8, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac")
	url, _ := serveFile(t, src)
	m := newManager(t, func(c *Config) { c.HWAccel = HWVAAPI })
	v, err := m.Variant("00ff", 0, Transcode, -1, Source{URL: url, Info: probe(t, src)})
	if err != nil {
		t.Fatal(err)
	}
	p, e := segment(t, v, 0)
	checkSigned(t, v, p, e)
	if s := m.Stats(); s.JobsFailed != 1 || s.JobsStarted != 2 {
		t.Errorf("jobs failed %d started %d, want 1 and 2", s.JobsFailed, s.JobsStarted)
	}
}

// TestSubtitlesToWebVTT: a SubRip track inside an MKV comes out as WebVTT.
func TestSubtitlesToWebVTT(t *testing.T) {
	need(t, "ffmpeg", "ffprobe")
	dir := t.TempDir()
	srt := filepath.Join(dir, "a.srt")
	os.WriteFile(srt, []byte("1\n00:00:01,000 --> 00:00:02,500\nHello there\n\n2\n00:00:03,000 --> 00:00:04,000\n<i>Second</i> line\n"), 0o644)
	src := filepath.Join(dir, "sub.mkv")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-i", srt,
		"-t", "5", "-map", "0:v", "-map", "1:s", "-c:v", "libx264", "-preset", "ultrafast", "-c:s", "srt", src).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	info := probe(t, src)
	if len(info.Subtitles) != 1 || !info.Subtitles[0].Text {
		t.Fatalf("probe: %+v", info.Subtitles)
	}
	url, _ := serveFile(t, src)
	m := newManager(t, nil)
	path, err := m.Subtitles(context.Background(), "0011", 0, info.Subtitles[0].Index, url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !bytes.HasPrefix(b, []byte("WEBVTT")) || !bytes.Contains(b, []byte("00:01.000 --> 00:02.500")) || !bytes.Contains(b, []byte("Hello there")) {
		t.Errorf("WebVTT:\n%s", b)
	}
	// Asked again, it is the file made before.
	if p2, err := m.Subtitles(context.Background(), "0011", 0, info.Subtitles[0].Index, "http://127.0.0.1:1/gone"); err != nil || p2 != path {
		t.Errorf("second request: %q, %v", p2, err)
	}
	// A stream that is not subtitles fails with ffmpeg's reason.
	if _, err := m.Subtitles(context.Background(), "0011", 0, 7, url); err == nil {
		t.Error("stream 7 of a file with two made WebVTT")
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPrefetchDoesNotStopAWaitedJob: with every slot taken by a job a viewer waits on, a request
// far ahead of it (a player's prefetch) is refused with ErrBusy instead of stopping that job.
func TestPrefetchDoesNotStopAWaitedJob(t *testing.T) {
	need(t, "ffmpeg", "ffprobe")
	src := makeMedia(t, "slow.mp4", 60, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac")
	// A slow source: the job takes seconds per segment, so its viewer is still waiting.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(slowWriter{w}, r, "slow.mp4", time.Time{}, mustOpen(t, src))
	}))
	t.Cleanup(srv.Close)
	m := newManager(t, func(c *Config) { c.MaxJobs = 1 })
	v, err := m.Variant("0abc", 0, Transcode, -1, Source{URL: srv.URL + "/slow.mp4", Info: probe(t, src)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waited := make(chan error, 1)
	go func() { _, _, err := v.Segment(ctx, 3); waited <- err }()
	waitFor(t, "the viewer waiting on the job", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(v.v.jobs) == 1 && v.v.jobs[0].waiters == 1
	})
	short, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	if _, _, err := v.Segment(short, 12); !errors.Is(err, ErrBusy) {
		t.Fatalf("a prefetch far ahead with the one slot waited on: %v, want ErrBusy", err)
	}
	if got := m.Stats().JobsStarted; got != 1 {
		t.Errorf("%d jobs started, want the one the viewer waits on", got)
	}
	cancel()
	<-waited
}

// slowWriter paces a response: 64 KiB every 100 ms.
type slowWriter struct{ http.ResponseWriter }

func (w slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 64<<10)
		time.Sleep(100 * time.Millisecond)
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

func mustOpen(t testing.TB, path string) *os.File {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestCacheKeepsItsBound: over CacheBytes, the segments of the variant read least recently go
// (here one left on disk by an earlier run), and the one being made stays.
func TestCacheKeepsItsBound(t *testing.T) {
	need(t, "ffmpeg", "ffprobe")
	src := makeMedia(t, "a.mp4", 12, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac")
	url, _ := serveFile(t, src)
	source := Source{URL: url, Info: probe(t, src)}
	dir := t.TempDir()
	first := newManager(t, func(c *Config) { c.Dir = dir })
	old, err := first.Variant("0001", 0, Transcode, -1, source)
	if err != nil {
		t.Fatal(err)
	}
	oldPath, _ := segment(t, old, 0)
	first.Close()

	m := newManager(t, func(c *Config) { c.Dir = dir; c.Key = first.cfg.Key; c.CacheBytes = 1 })
	if m.Stats().CacheBytes == 0 {
		t.Fatal("the segments the earlier run left are not counted")
	}
	v, err := m.Variant("0002", 0, Transcode, -1, source)
	if err != nil {
		t.Fatal(err)
	}
	path, _ := segment(t, v, 0)
	if _, err := os.Stat(filepath.Dir(oldPath)); !os.IsNotExist(err) {
		t.Errorf("the variant read least recently is still on disk over the bound: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the segment just made was removed: %v", err)
	}
	waitFor(t, "the job to finish the file", func() bool { return m.Stats().JobsRunning == 0 })
	made := int64(0)
	for _, e := range v.Manifest().Entries {
		made += int64(e.Size)
	}
	if got := m.Stats().CacheBytes; got != made {
		t.Errorf("cache holds %d bytes, want the new variant's %d", got, made)
	}
}
