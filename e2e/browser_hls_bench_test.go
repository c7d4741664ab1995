package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/gateway"
	"github.com/swarmgate/swarmgate/internal/loadavg"
	"github.com/swarmgate/swarmgate/live"
)

// firstFrameJS adds to milestonesJS the presentation time of the video's first frame
// (requestVideoFrameCallback, same clock): asked for at every loadstart until one is seen.
const firstFrameJS = `addEventListener("loadstart", (e) => {
  const v = e.target;
  if (!v.requestVideoFrameCallback || window.__milestones.frame !== undefined) return;
  v.requestVideoFrameCallback((now, meta) => {
    if (window.__milestones.frame === undefined) window.__milestones.frame = meta.presentationTime || now;
  });
}, true);`

// hlsCollectJS is collectJS's milestones, the first frame, when the first HLS requests ended
// (resource timing) and the page's plan and mode.
const hlsCollectJS = `(() => {
  const out = Object.assign({}, window.__milestones);
  for (const e of performance.getEntriesByType("resource")) {
    for (const [key, re] of [["manifest.json", /\/hls\/.*\/manifest\.json$/], ["index.m3u8", /\/hls\/.*\/index\.m3u8$/], ["first segment", /\/hls\/.*\/\d+\.ts$/], ["live.min.js", /live\.min\.js$/], ["webtorrent.js", /webtorrent\.min\.js$/]]) {
      if (re.test(e.name) && out[key] === undefined) out[key] = e.responseEnd;
    }
  }
  for (const m of performance.getEntriesByType("mark")) {
    if (m.name.startsWith("swarmgate:") && out[m.name] === undefined) out[m.name] = m.startTime;
  }
  const sg = window.swarmgate || {};
  return {ms: out, how: (sg.plan && sg.plan.how) || "", mode: sg.mode || "", state: sg.state || "", message: sg.message || ""};
})()`

// hlsFilm makes the benchmarks' film: an MKV of H.264 (High, CRF 21, a keyframe every 2 s) and
// AAC stereo, which Chromium plays as it is and which the page is told to remux (?caps=-x-matroska,
// as a browser that plays no Matroska) or transcode (?caps=-avc1). Not AC-3: Debian's Chromium
// decodes none, so an MKV with AC-3 has no direct side to compare with (it is remuxed anyway).
func hlsFilm(b *testing.B, seconds int, size string) string {
	b.Helper()
	start := time.Now()
	path := makeFilm(b, "film.mkv", seconds, size, "-c:v", "libx264", "-preset", "veryfast", "-crf", "21",
		"-profile:v", "high", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "160k", "-ac", "2")
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("film: %d s, %s, H.264 + AAC in MKV, %.1f MB, made in %.1f s", seconds, size, float64(fi.Size())/1e6, time.Since(start).Seconds())
	return path
}

// BenchmarkHLSFirstFrame measures, per iteration, the time from navigation to the video's first
// frame for one film played three ways, side by side, each on a cold gateway (started for it;
// it has the magnet, the metadata and the probe, not the film: a native TCP-only seeder on
// loopback has that) in a fresh Chromium (fresh profile):
//
//   - direct: the watch page as it is; Chromium plays MKV H.264 + AAC itself, through webtorrent;
//   - remux: ?caps=-x-matroska, the page takes the browser to play no Matroska (Safari): the
//     gateway copies video and audio into HLS (MPEG-TS);
//   - transcode: ?caps=-avc1, no H.264 either: the gateway encodes H.264 (libx264 veryfast).
//
// It reports the medians of navigation → first "playing" event (as BenchmarkTimeToFirstFrame)
// and → the first frame presented (requestVideoFrameCallback), and the ratios of remux and
// transcode to direct. Knobs: SWARMGATE_HLS_BENCH_SIZE (1280x720), SWARMGATE_HLS_BENCH_SECONDS
// (60). Run:
//
//	go test -run '^$' -bench HLSFirstFrame -benchtime 3x -timeout 30m ./e2e/
func BenchmarkHLSFirstFrame(b *testing.B) {
	size := envString("SWARMGATE_HLS_BENCH_SIZE", "1280x720")
	seconds := envInt(b, "SWARMGATE_HLS_BENCH_SECONDS", 60)
	film := hlsFilm(b, seconds, size)
	seeder := seedFile(b, film, 256<<10)

	sides := []struct{ name, caps string }{{"direct", ""}, {"remux", "-x-matroska"}, {"transcode", "-avc1"}}
	runs := map[string][]map[string]float64{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, side := range sides {
			srv := startGateway(b, func(c *gateway.Config) { c.FFprobe, c.FFmpeg = "ffprobe", "ffmpeg" })
			_, watch := addFilm(b, srv.URL, seeder, "film.mkv")
			if side.caps != "" {
				watch += "&caps=" + side.caps
			}
			runs[side.name] = append(runs[side.name], hlsFirstFrame(b, watch, side.name))
			if err := srv.Close(); err != nil {
				b.Error(err)
			}
		}
	}
	b.StopTimer()

	b.ReportMetric(0, "ns/op") // an iteration's wall time is set-up, not the figure
	direct := medianOf(runs["direct"], "playing")
	for _, side := range sides {
		playing, frame := medianOf(runs[side.name], "playing"), medianOf(runs[side.name], "frame")
		b.ReportMetric(playing, side.name+"-ms")
		if frame >= 0 {
			b.ReportMetric(frame, side.name+"-frame-ms")
		}
		if side.name != "direct" {
			b.ReportMetric(playing/direct, side.name+"-ratio")
		}
		var line strings.Builder
		for _, k := range []string{"swarmgate:torrent", "swarmgate:webtorrent", "swarmgate:worker", "swarmgate:ready", "swarmgate:streaming",
			"manifest.json", "live.min.js", "index.m3u8", "first segment", "loadstart", "loadedmetadata", "canplay", "playing", "frame"} {
			if m := medianOf(runs[side.name], k); m >= 0 {
				fmt.Fprintf(&line, " %s %.0f", k, m)
			}
		}
		var all []string
		for _, r := range runs[side.name] {
			all = append(all, fmt.Sprintf("%.0f", r["playing"]))
		}
		b.Logf("%s, median ms since navigation over %d run(s):%s (playing per run: %s)", side.name, b.N, line.String(), strings.Join(all, " "))
	}
	b.Logf("time to first frame (playing): direct %.0f ms, remux %.0f ms (%.2f×), transcode %.0f ms (%.2f×); load average now %s",
		direct, medianOf(runs["remux"], "playing"), medianOf(runs["remux"], "playing")/direct,
		medianOf(runs["transcode"], "playing"), medianOf(runs["transcode"], "playing")/direct, loadavg.String())
}

// hlsFirstFrame opens url in a fresh browser, waits for the first "playing" event and the
// first frame, checks the page played it the way side names, and returns the milestones.
func hlsFirstFrame(b *testing.B, url, side string) map[string]float64 {
	b.Helper()
	br := startBrowser(b, browserOptions{name: side, initScripts: []string{milestonesJS, firstFrameJS}})
	defer br.stop()
	br.navigate(url)
	var got struct {
		MS                        map[string]float64 `json:"ms"`
		How, Mode, State, Message string
	}
	var playingAt time.Time
	waitUntil(b, 120*time.Second, side+": first frame at "+url, func() (bool, string) {
		if err := br.eval(0, hlsCollectJS, &got); err != nil {
			return false, err.Error()
		}
		if got.State == "error" {
			b.Fatalf("%s: the page failed: %s", side, got.Message)
		}
		_, playing := got.MS["playing"]
		_, frame := got.MS["frame"]
		if playing && playingAt.IsZero() {
			playingAt = time.Now()
		}
		// requestVideoFrameCallback may not fire where nothing is composited: then the
		// "playing" event alone, after a few seconds' grace.
		return playing && (frame || time.Since(playingAt) > 5*time.Second), fmt.Sprintf("%+v", got)
	})
	if got.How != side {
		b.Fatalf("%s: the page's plan is %q (mode %q): %s", side, got.How, got.Mode, got.Message)
	}
	return got.MS
}

// hlsSegmentPath matches the gateway's HLS segments.
var hlsSegmentPath = regexp.MustCompile(`^/hls/[0-9a-fA-F]{40}/\d+/[a-z0-9-]+/\d+\.ts$`)

// BenchmarkHLSEgress measures what the gateway sends when five viewers (one Chromium each,
// fresh profile, opened SWARMGATE_HLS_BENCH_STAGGER apart, 2 s) watch one transcoded film
// (?caps=-avc1) to its end: the HLS segment bytes it served (counted by a loopback proxy in front
// of it, and by the pages' own counters) ÷ the transcoded variant's size (the sum of its signed
// manifest's entries), and the bytes the viewers took from each other. 1.0 would be each
// segment leaving the gateway once; five viewers fetching everything themselves make 5.0. Each
// side starts a cold gateway and waits until every viewer has played the film to its end or
// the time runs out (twice the film at its rate, plus two minutes), then stops.
//
// Knobs: SWARMGATE_HLS_BENCH_VIEWERS (5), SWARMGATE_HLS_EGRESS_SIZE (854x480: five browsers
// and the encoder share the machine), SWARMGATE_HLS_EGRESS_SECONDS (60), SWARMGATE_HLS_BENCH_RATE
// (the videos' playbackRate, 1), SWARMGATE_HLS_BENCH_SIDES ("on"; "on,off" adds P2P off,
// ?p2p=0, as the baseline), SWARMGATE_HLS_BENCH_QUERY (added to the page's URL). Run:
//
//	go test -run '^$' -bench HLSEgress -benchtime 1x -timeout 30m ./e2e/
func BenchmarkHLSEgress(b *testing.B) {
	needDefaultRoute(b)
	viewers := envInt(b, "SWARMGATE_HLS_BENCH_VIEWERS", 5)
	size := envString("SWARMGATE_HLS_EGRESS_SIZE", "854x480")
	seconds := envInt(b, "SWARMGATE_HLS_EGRESS_SECONDS", 60)
	rate := envFloat(b, "SWARMGATE_HLS_BENCH_RATE", 1)
	stagger := envDuration(b, "SWARMGATE_HLS_BENCH_STAGGER", 2*time.Second)
	sides := strings.Split(envString("SWARMGATE_HLS_BENCH_SIDES", "on"), ",")
	query := os.Getenv("SWARMGATE_HLS_BENCH_QUERY")
	film := hlsFilm(b, seconds, size)
	seeder := seedFile(b, film, 256<<10)

	results := map[string]*egressSide{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, side := range sides {
			r := results[side]
			if r == nil {
				r = &egressSide{name: side}
				results[side] = r
			}
			q := joinQuery("caps=-avc1", query)
			if side == "off" {
				q = joinQuery(q, "p2p=0")
			}
			runEgressSide(b, r, seeder, q, viewers, rate, stagger, time.Duration(float64(seconds)/rate*2*float64(time.Second))+2*time.Minute)
		}
	}
	b.StopTimer()

	b.ReportMetric(0, "ns/op") // an iteration's wall time is the film's, not a figure
	for _, side := range sides {
		r := results[side]
		b.ReportMetric(float64(r.served)/float64(r.variant), side+"-egress/size")
		b.ReportMetric(r.fromBrowsers/(r.fromBrowsers+r.fromGateway), side+"-p2p-share")
		b.Logf("P2P %s: %d viewer(s), %d finished the film; transcoded variant %d segments, %.1f MB; "+
			"the gateway served %.1f MB of segments (%.2f× the variant; the pages counted %.1f MB from the gateway), "+
			"%.1f MB from browsers (%.1f %% of what the pages got), uploaded %.1f MB; %d segments verified, %d rejected; "+
			"waiting events %d; transcode jobs started %d",
			side, r.viewers, r.finished, r.segments, float64(r.variant)/1e6,
			float64(r.served)/1e6, float64(r.served)/float64(r.variant), r.fromGateway/1e6,
			r.fromBrowsers/1e6, 100*r.fromBrowsers/(r.fromBrowsers+r.fromGateway), r.uploaded/1e6, r.verified, r.rejected,
			r.waiting, r.jobs)
	}
	b.Logf("load average now %s", loadavg.String())
}

// egressSide collects one side's figures over its iterations.
type egressSide struct {
	name                                string
	viewers, finished                   int
	variant, served                     int64 // bytes: the variant's segments (summed over iterations), what the proxy served
	segments                            int
	fromGateway, fromBrowsers, uploaded float64
	verified, rejected, waiting         int
	jobs                                int64
}

// egressSample is one reading of a viewer's page.
type egressSample struct {
	State, Mode, Message, Variant       string
	CurrentTime, Duration, Rate         float64
	Ended                               bool
	FromGateway, FromBrowsers, Uploaded float64
	Verified, Rejected, Waiting         float64
}

const egressSampleJS = `(() => {
  const v = document.getElementById("player"), sg = window.swarmgate || {}, s = sg.stats || {};
  return {State: sg.state || "", Mode: sg.mode || "", Message: sg.message || "", Variant: (sg.hls && sg.hls.variant) || "",
    CurrentTime: v ? v.currentTime : 0, Duration: v && Number.isFinite(v.duration) ? v.duration : 0, Rate: v ? v.playbackRate : 0,
    Ended: v ? v.ended : false, FromGateway: s.fromGateway || 0, FromBrowsers: s.fromBrowsers || 0, Uploaded: s.uploaded || 0,
    Verified: s.verified || 0, Rejected: s.rejected || 0, Waiting: window.__waiting || 0};
})()`

// rateJS sets the video's playbackRate whenever it plays (the page never sets it).
func rateJS(rate float64) string {
	return fmt.Sprintf(`addEventListener("playing", (e) => { if (e.target.playbackRate !== %[1]g) e.target.playbackRate = %[1]g }, true);`, rate)
}

func runEgressSide(b *testing.B, r *egressSide, seeder *fileSeeder, query string, n int, rate float64, stagger, within time.Duration) {
	b.Helper()
	srv := startGateway(b, func(c *gateway.Config) { c.FFprobe, c.FFmpeg = "ffprobe", "ffmpeg" })
	defer srv.Close()
	proxy := newCountingProxy(b, srv.URL, hlsSegmentPath)
	ih, _ := addFilm(b, srv.URL, seeder, "film.mkv")
	u := proxy.URL + "/watch/" + ih + "?file=0&" + query

	var views []*browser
	for i := 0; i < n; i++ {
		views = append(views, startBrowser(b, browserOptions{name: fmt.Sprintf("%s-viewer-%d", r.name, i+1), initScripts: []string{waitingJS, rateJS(rate)}}))
	}
	defer func() {
		for _, v := range views {
			v.stop()
		}
	}()
	for i, v := range views {
		if i > 0 {
			time.Sleep(stagger)
		}
		v.navigate(u)
	}

	// Until every viewer has played to the end, or the time is up.
	samples := make([]egressSample, n)
	done := make([]bool, n)
	deadline := time.Now().Add(within)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for left := n; left > 0 && time.Now().Before(deadline); <-tick.C {
		for i, v := range views {
			if done[i] {
				continue
			}
			if err := v.eval(0, egressSampleJS, &samples[i]); err != nil {
				b.Fatalf("%s: %v", v.name, err)
			}
			s := samples[i]
			if s.State == "error" {
				b.Fatalf("%s: the page failed: %s", v.name, s.Message)
			}
			if s.Ended || s.Duration > 0 && s.CurrentTime >= s.Duration-0.5 {
				done[i] = true
				left--
			}
		}
	}
	// Last counters of every viewer (a finished one's are final; a stopped one's up to now).
	for i, v := range views {
		if err := v.eval(0, egressSampleJS, &samples[i]); err != nil {
			b.Fatalf("%s: %v", v.name, err)
		}
		s := samples[i]
		if s.Mode != "hls" || !strings.HasPrefix(s.Variant, "transcode") {
			b.Fatalf("%s: mode %q, variant %q: not the gateway's transcode through hls.js: %s", v.name, s.Mode, s.Variant, s.Message)
		}
		if done[i] {
			r.finished++
		} else {
			b.Logf("%s: did not finish within %v: at %.1f of %.1f s", v.name, within, s.CurrentTime, s.Duration)
		}
		r.fromGateway += s.FromGateway
		r.fromBrowsers += s.FromBrowsers
		r.uploaded += s.Uploaded
		r.verified += int(s.Verified)
		r.rejected += int(s.Rejected)
		r.waiting += int(s.Waiting)
	}
	r.viewers += n
	r.served += proxy.served.Load()

	// The variant as the gateway made it: every entry of its signed manifest.
	res, err := http.Get(srv.URL + "/hls/" + ih + "/0/" + samples[0].Variant + "/manifest.json")
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	var mf live.Manifest
	if err := json.NewDecoder(res.Body).Decode(&mf); err != nil {
		b.Fatalf("manifest: %v", err)
	}
	for _, e := range mf.Entries {
		r.variant += int64(e.Size)
	}
	r.segments = len(mf.Entries)
	r.jobs += metricValue(b, srv.URL, "swarmgate_transcode_jobs_started_total")
}

// metricValue reads one unlabelled counter from the gateway's /metrics.
func metricValue(b *testing.B, base, name string) int64 {
	b.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("/metrics: %s: %v", sc.Text(), err)
			}
			return int64(f)
		}
	}
	b.Fatalf("/metrics has no %s", name)
	return 0
}
