package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/live"
)

// BenchmarkLiveLatencyAndShare measures, in one run on loopback, how far behind the broadcaster's
// capture clock five Chromium viewers of one live stream play, and how many of their bytes came
// from each other, with P2P on (the watch page as it is) and off (the same page with ?p2p=0:
// hls.js alone, every byte from the gateway), side by side. The goal is a median ≤ 10 s behind
// live and most bytes from peers.
//
// Latency here is glass-to-player: Date.now() in the viewer's page minus hls.js's playingDate,
// the EXT-X-PROGRAM-DATE-TIME of the fragment on screen plus how far into it the video is. That
// date is the segment entry's signed TimeMS, which live.Broadcast takes from ffmpeg's own
// playlist: the wall clock when ffmpeg's HLS muxer started (ffmpeg 5.1 truncates it to the whole
// second, so it can be up to 1 s early) plus the durations of the segments before. With -re and a
// lavfi source, a frame is made ("captured") when its time comes on that clock, so the figure is
// glass-to-player, over-stated by at most that rounding; the ingest part of it is reported on its
// own (capture end → the gateway's 201 for the segment). Everything runs on one machine, so the
// browsers' and ffmpeg's clocks are the same clock.
//
// One gateway, one broadcast (ffmpeg's testsrc2, 640×360 at 25 fps, H.264/AAC, 1 s segments)
// for both sides. Each side starts its own viewers (one Chromium process each, fresh profile),
// opens the watch page in them a second apart, waits until all play, lets them settle, then
// samples every viewer once a second for the watch time and closes them. Bytes are counted by the
// page (window.swarmgate.stats) over the sampled time and, as a check, by a loopback proxy in
// front of the gateway that counts the segment bytes it served.
//
//	go test -run '^$' -bench LiveLatencyAndShare -benchtime 1x -timeout 20m ./e2e/
//
// Knobs (environment): SWARMGATE_LIVE_BENCH_VIEWERS (5), SWARMGATE_LIVE_BENCH_WATCH (45s),
// SWARMGATE_LIVE_BENCH_SETTLE (10s), SWARMGATE_LIVE_BENCH_QUERY (extra query for the page, e.g.
// latency=4), SWARMGATE_LIVE_BENCH_SEGMENT (segment seconds, 1), SWARMGATE_LIVE_BENCH_SIDES
// ("on,off").
func BenchmarkLiveLatencyAndShare(b *testing.B) {
	viewers := envInt(b, "SWARMGATE_LIVE_BENCH_VIEWERS", 5)
	watch := envDuration(b, "SWARMGATE_LIVE_BENCH_WATCH", 45*time.Second)
	settle := envDuration(b, "SWARMGATE_LIVE_BENCH_SETTLE", 10*time.Second)
	segment := envFloat(b, "SWARMGATE_LIVE_BENCH_SEGMENT", 1)
	query := os.Getenv("SWARMGATE_LIVE_BENCH_QUERY")
	sides := strings.Split(envString("SWARMGATE_LIVE_BENCH_SIDES", "on,off"), ",")

	perSide := 2*time.Duration(viewers)*time.Second + 60*time.Second + settle + watch
	ingest := &ingestTimes{}
	// A bitrate nearer a real stream's than the tests' 320×180; uploads timed by ingest.
	ls := startLive(b, liveOptions{
		seconds: int((time.Duration(b.N*len(sides))*perSide + time.Minute).Seconds()), end: true,
		size: "640x360", segment: segment,
		client: &http.Client{Timeout: 30 * time.Second, Transport: ingestTransport{ingest}},
	})
	id := ls.id
	proxy := newCountingProxy(b, ls.base, liveSegmentPath)

	results := map[string]*liveSide{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, side := range sides {
			q := query
			if side == "off" {
				q = joinQuery(q, "p2p=0")
			}
			r := results[side]
			if r == nil {
				r = &liveSide{name: side}
				results[side] = r
			}
			runLiveSide(b, r, proxy, id, q, viewers, settle, watch)
		}
	}
	b.StopTimer()

	b.ReportMetric(0, "ns/op") // an iteration's wall time is the set watch time, not a figure
	for _, side := range sides {
		r := results[side]
		med, p95 := percentile(r.latency, 0.5), percentile(r.latency, 0.95)
		b.ReportMetric(med, side+"-median-s")
		b.ReportMetric(p95, side+"-p95-s")
		if side == "on" {
			b.ReportMetric(r.share(), "on-p2p-share")
		}
		b.Logf("P2P %s: %d viewer(s), %d latency samples: median %.2f s, p95 %.2f s, min %.2f, max %.2f; behind the playlist edge (hls.latency) median %.2f s; "+
			"bytes from the gateway %.0f, from browsers %.0f (share %.1f %%), uploaded %.0f; the proxy served %d segment bytes; "+
			"samples not playing %d; waiting events %d; rejected segments %d; peers at the end %v",
			side, r.viewers, len(r.latency), med, p95, percentile(r.latency, 0), percentile(r.latency, 1), percentile(r.edge, 0.5),
			r.fromGateway, r.fromBrowsers, 100*r.share(), r.uploaded, r.served,
			r.notPlaying, r.waiting, r.rejected, r.peers)
	}
	if on, off := results["on"], results["off"]; on != nil && off != nil && len(off.latency) > 0 {
		ratio := percentile(on.latency, 0.5) / percentile(off.latency, 0.5)
		b.ReportMetric(ratio, "latency-ratio")
		b.Logf("median latency P2P on ÷ off: %.2f×", ratio)
	}
	if d := ingest.delays(); len(d) > 0 {
		b.ReportMetric(percentile(d, 0.5), "ingest-median-s")
		b.Logf("capture end → gateway accepted (PDT + duration → 201), %d segments: median %.2f s, min %.2f, max %.2f",
			len(d), percentile(d, 0.5), percentile(d, 0), percentile(d, 1))
	}
	if r := results["on"]; r != nil {
		med := percentile(r.latency, 0.5)
		verdict := "meets"
		if med > 10 || r.share() <= 0.5 {
			verdict = "MISSES"
		}
		b.Logf("goal (median ≤ 10 s behind live, most bytes from peers): %s it: %.2f s, %.1f %% from peers", verdict, med, 100*r.share())
	}
}

// liveSide collects one side's figures over its iterations.
type liveSide struct {
	name                                string
	viewers                             int
	latency, edge                       []float64 // seconds, every sample of every viewer
	fromGateway, fromBrowsers, uploaded float64   // bytes over the sampled time
	served                              int64     // segment bytes the proxy served over the sampled time
	notPlaying, waiting, rejected       int
	peers                               []float64
}

func (r *liveSide) share() float64 {
	if all := r.fromGateway + r.fromBrowsers; all > 0 {
		return r.fromBrowsers / all
	}
	return 0
}

// liveSample is one reading of a viewer's page.
type liveSample struct {
	Now, PDT, Edge                                    float64
	State                                             string
	Paused                                            bool
	FromGateway, FromBrowsers, Uploaded, Peers, Rejct float64
	Waiting                                           float64
	P2P                                               bool
}

const liveSampleJS = `(() => {
  const h = window.swarmgateHls, v = document.getElementById("player"), sg = window.swarmgate;
  const d = h && h.playingDate;
  const s = sg ? sg.stats : {};
  return {Now: Date.now(), PDT: d ? d.getTime() : 0, Edge: h && Number.isFinite(h.latency) ? h.latency : -1,
    State: sg ? sg.state : "", Paused: v ? v.paused : true, P2P: !!(sg && sg.p2p),
    FromGateway: s.fromGateway || 0, FromBrowsers: s.fromBrowsers || 0, Uploaded: s.uploaded || 0,
    Peers: s.peers || 0, Rejct: s.rejected || 0, Waiting: window.__waiting || 0};
})()`

// waitingJS counts the video's "waiting" events (rebuffering), seen before the page's handlers.
const waitingJS = `window.__waiting = 0; addEventListener("waiting", () => { window.__waiting++ }, true);`

func runLiveSide(b *testing.B, r *liveSide, proxy *countingProxy, id live.StreamID, query string, n int, settle, watch time.Duration) {
	b.Helper()
	u := proxy.URL + "/live/" + id.String()
	if query != "" {
		u += "?" + query
	}
	var views []*browser
	for i := 0; i < n; i++ {
		views = append(views, startBrowser(b, browserOptions{name: fmt.Sprintf("%s-viewer-%d", r.name, i+1), initScripts: []string{waitingJS}}))
	}
	defer func() {
		for _, v := range views {
			v.stop()
		}
	}()
	for i, v := range views {
		if i > 0 {
			time.Sleep(time.Second)
		}
		v.navigate(u)
	}
	for _, v := range views {
		waitUntil(b, 60*time.Second, v.name+" playing with a program date", func() (bool, string) {
			var s liveSample
			if err := v.eval(0, liveSampleJS, &s); err != nil {
				return false, err.Error()
			}
			return s.State == "playing" && s.PDT > 0 && !s.Paused, fmt.Sprintf("%+v", s)
		})
	}
	time.Sleep(settle)

	read := func() []liveSample {
		out := make([]liveSample, len(views))
		for i, v := range views {
			if err := v.eval(0, liveSampleJS, &out[i]); err != nil {
				b.Fatalf("%s: %v", v.name, err)
			}
		}
		return out
	}
	servedBefore := proxy.served.Load()
	first := read()
	var last []liveSample
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for end := time.Now().Add(watch); time.Now().Before(end); {
		<-tick.C
		last = read()
		for i, s := range last {
			if s.P2P != (r.name != "off") {
				b.Fatalf("%s: window.swarmgate.p2p = %v on the %q side", views[i].name, s.P2P, r.name)
			}
			if s.State != "playing" || s.Paused || s.PDT == 0 {
				r.notPlaying++
				continue
			}
			r.latency = append(r.latency, (s.Now-s.PDT)/1000)
			if s.Edge >= 0 {
				r.edge = append(r.edge, s.Edge)
			}
		}
	}
	r.served += proxy.served.Load() - servedBefore
	r.viewers += n
	r.peers = nil
	for i := range last {
		r.fromGateway += last[i].FromGateway - first[i].FromGateway
		r.fromBrowsers += last[i].FromBrowsers - first[i].FromBrowsers
		r.uploaded += last[i].Uploaded - first[i].Uploaded
		r.waiting += int(last[i].Waiting - first[i].Waiting)
		r.rejected += int(last[i].Rejct)
		r.peers = append(r.peers, last[i].Peers)
	}
}

// countingProxy is a loopback reverse proxy in front of the gateway that counts the bytes of the
// segments it serves (the paths a pattern matches): what the viewers got over HTTP, measured
// outside the page. The pages
// and the tracker go through it too (the gateway names its URLs from the request's Host).
type countingProxy struct {
	URL    string
	served atomic.Int64
}

// liveSegmentPath matches a live stream's media and init segments.
var liveSegmentPath = regexp.MustCompile(`^/live/[a-z2-7]{52}/(\d+\.m4s|init-\d+\.mp4)$`)

func newCountingProxy(t testing.TB, target string, segmentPath *regexp.Regexp) *countingProxy {
	t.Helper()
	tu, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{}
	rp := httputil.NewSingleHostReverseProxy(tu)
	rp.FlushInterval = -1
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		// A viewer dropping a download (p2p-media-loader does, when a peer has the segment
		// first) is no error worth a log line.
		if !errors.Is(err, context.Canceled) {
			t.Logf("counting proxy: %s %s: %v", r.Method, r.URL.Path, err)
		}
		w.WriteHeader(http.StatusBadGateway)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && segmentPath.MatchString(r.URL.Path) {
			w = &countingWriter{ResponseWriter: w, n: &p.served}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ingestTimes records, for each media segment the gateway accepted, how long after its capture
// ended (PDT + duration, from its signed entry) the gateway's 201 arrived.
type ingestTimes struct {
	mu sync.Mutex
	d  []float64
}

func (it *ingestTimes) delays() []float64 {
	it.mu.Lock()
	defer it.mu.Unlock()
	return slices.Clone(it.d)
}

type ingestTransport struct{ times *ingestTimes }

func (t ingestTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || req.Method != http.MethodPut || res.StatusCode != http.StatusCreated || !strings.Contains(req.URL.Path, "/media/") {
		return res, err
	}
	at := time.Now()
	js, derr := base64.RawURLEncoding.DecodeString(req.Header.Get(live.EntryHeader))
	var e struct {
		TimeMS     int64 `json:"time_ms"`
		DurationUS int64 `json:"duration_us"`
	}
	if derr == nil && json.Unmarshal(js, &e) == nil && e.TimeMS > 0 {
		end := time.UnixMilli(e.TimeMS).Add(time.Duration(e.DurationUS) * time.Microsecond)
		t.times.mu.Lock()
		t.times.d = append(t.times.d, at.Sub(end).Seconds())
		t.times.mu.Unlock()
	}
	return res, err
}

// percentile is the q-quantile (0 ≤ q ≤ 1, nearest rank) of xs, NaN when empty.
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func joinQuery(a, b string) string {
	if a == "" {
		return b
	}
	return a + "&" + b
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(t testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func envFloat(t testing.TB, name string, def float64) float64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return f
}

func envDuration(t testing.TB, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a Go duration such as 45s", name, v)
	}
	return d
}
