package transcode

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/internal/loadavg"
)

// BenchmarkEncodeSpeed measures how fast this machine makes HLS of 720p sources, as a multiple of
// real time: each iteration a fresh Manager (empty cache, so every segment is made) reads the
// whole file over loopback HTTP, as it reads the gateway's /stream, and the benchmark asks for
// its segments in order, as a viewer does, until the last one is made.
//
//   - h264/transcode and h264/remux: an MKV of H.264 (High, CRF 20) and AC-3 audio, the
//     remux copying the video and making the audio AAC;
//   - hevc/transcode: an MKV of HEVC (libx265) and E-AC-3.
//
// x_realtime is media seconds ÷ wall seconds (first request → last segment, ffmpeg's start
// included); work_x_realtime is the Manager's own figure (Stats().MediaSeconds ÷ WorkSeconds,
// what the gateway's metrics report). The sources are testsrc2 (synthetic: easier to encode
// than a film), made once per run, SWARMGATE_ENCODE_BENCH_SECONDS long (20). Run:
//
//	go test -run '^$' -bench EncodeSpeed -benchtime 2x ./transcode/
func BenchmarkEncodeSpeed(b *testing.B) {
	need(b, "ffmpeg", "ffprobe")
	seconds := 20
	if v := os.Getenv("SWARMGATE_ENCODE_BENCH_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 4 {
			b.Fatalf("SWARMGATE_ENCODE_BENCH_SECONDS=%q: want a whole number of seconds ≥ 4", v)
		}
		seconds = n
	}
	b.Logf("machine: %s/%s, %d CPUs, load average at start %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), loadavg.String())
	dir := b.TempDir()
	h264 := makeBenchSource(b, filepath.Join(dir, "h264-720p.mkv"), seconds,
		"-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-profile:v", "high", "-pix_fmt", "yuv420p", "-g", "50",
		"-c:a", "ac3", "-b:a", "384k", "-ac", "6")
	hevc := makeBenchSource(b, filepath.Join(dir, "hevc-720p.mkv"), seconds,
		"-c:v", "libx265", "-preset", "ultrafast", "-crf", "24", "-pix_fmt", "yuv420p", "-x265-params", "log-level=error:keyint=50",
		"-c:a", "eac3", "-b:a", "384k", "-ac", "6")

	for _, c := range []struct {
		name string
		path string
		mode Mode
	}{
		{"h264/transcode", h264, Transcode},
		{"h264/remux", h264, Remux},
		{"hevc/transcode", hevc, Transcode},
	} {
		info := probe(b, c.path)
		url, _ := serveFile(b, c.path)
		src := Source{URL: url, Info: info}
		if c.mode == Remux {
			kf := ffprobeKeyframes(b, c.path)
			src.Keyframes = func() ([]float64, error) { return kf, nil }
		}
		b.Run(c.name, func(b *testing.B) {
			var media, wall, statMedia, statWork float64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				m := newManager(b, func(cfg *Config) { cfg.MaxJobs = 1 })
				v, err := m.Variant("00be", i, c.mode, -1, src)
				if err != nil {
					b.Fatal(err)
				}
				n := v.Layout().Segments()
				b.StartTimer()
				start := time.Now()
				for s := 0; s < n; s++ {
					segment(b, v, s)
				}
				wall += time.Since(start).Seconds()
				b.StopTimer()
				l := v.Layout()
				media += l.Bounds[n] - l.Bounds[0]
				st := m.Stats()
				statMedia += st.MediaSeconds[c.mode]
				statWork += st.WorkSeconds[c.mode]
				if st.JobsStarted != 1 || st.JobsFailed != 0 {
					b.Errorf("%d jobs started, %d failed: want one job for the whole file", st.JobsStarted, st.JobsFailed)
				}
				m.Close()
				b.StartTimer()
			}
			b.ReportMetric(media/wall, "x_realtime")
			b.ReportMetric(statMedia/statWork, "work_x_realtime")
			b.Logf("%s: %.1f media s in %.1f wall s over %d run(s): %.2f× real time (the Manager's work seconds: %.2f×); load average now %s",
				c.name, media, wall, b.N, media/wall, statMedia/statWork, loadavg.String())
		})
	}
}

// makeBenchSource has ffmpeg make a 1280×720, 25 fps source with 5.1 audio.
func makeBenchSource(b *testing.B, path string, seconds int, codecArgs ...string) string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args := []string{"-v", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(seconds)}
	args = append(append(args, codecArgs...), path)
	start := time.Now()
	if out, err := exec.CommandContext(ctx, "ffmpeg", args...).CombinedOutput(); err != nil {
		b.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	fi, _ := os.Stat(path)
	b.Logf("source %s: %d s, %.1f MB, made in %.1f s", filepath.Base(path), seconds, float64(fi.Size())/1e6, time.Since(start).Seconds())
	return path
}
