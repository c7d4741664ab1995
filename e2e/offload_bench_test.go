package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent"

	"github.com/swarmgate/swarmgate/gateway"
)

// BenchmarkOffload measures how much of a torrent the gateway sends when several browsers fetch
// it at once (issue 12): its egress (WebRTC and HTTP, webseed included) ÷ the file size, each
// viewer's finish time, and the bytes browsers got from each other. Side by side in one run:
// N plain webtorrent@3 pages (not ours: webtorrent's own choices, memory storage) fetching the
// whole file, with the gateway's uplink capped at 1.5× the video's bitrate with upload sharing
// on and off, and uncapped; and N of our watch pages playing the video (bitrate near the cap),
// counting their stalls. Goal: egress ≤ 1.5× with ten viewers under the cap, every viewer done
// within 2× the fastest, no stalls for the playing pages.
//
// Each case is a fresh gateway fetching the file from a native seeder on loopback, and fresh
// Chromium processes (one per viewer, fresh profile) opened 2 s apart; a case stops when every
// viewer is done, or after its bound.
//
//	go test -run '^$' -bench Offload -benchtime 1x -timeout 40m ./e2e/
//
// Knobs: SWARMGATE_OFFLOAD_CASES, comma-separated viewers:cap:sharing:page, cap "capped" (1.5× the
// bitrate) or "none", sharing "on" or "off", page "plain" or "watch" (default
// "5:capped:on:plain,5:capped:off:plain,10:capped:on:plain,10:capped:off:plain,5:none:on:plain,5:capped:on:watch");
// SWARMGATE_OFFLOAD_SECONDS, the video's length (60); SWARMGATE_OFFLOAD_MBPS, its bitrate (4);
// SWARMGATE_OFFLOAD_SIZE, its picture (640x360: every page decodes it on the same machine);
// SWARMGATE_OFFLOAD_TRACE=1 logs each viewer every 10 s, and a watch page's wires at each stall;
// SWARMGATE_OFFLOAD_ONE_BROWSER=1 opens the viewers as tabs of one Chromium, each in a browser
// context of its own (storage, cache, service workers: a fresh profile each, as before), so that
// the machine runs one browser, GPU and network process instead of one per viewer;
// SWARMGATE_OFFLOAD_WINDOW=WxH sets Chromium's window size (the watch page's video is drawn in
// software here, at the page's width: a viewer's GPU would do that).
func BenchmarkOffload(b *testing.B) {
	seconds := envInt(b, "SWARMGATE_OFFLOAD_SECONDS", 60)
	mbps := envFloat(b, "SWARMGATE_OFFLOAD_MBPS", 4)
	cases := strings.Split(envString("SWARMGATE_OFFLOAD_CASES",
		"5:capped:on:plain,5:capped:off:plain,10:capped:on:plain,10:capped:off:plain,5:none:on:plain,5:capped:on:watch"), ",")
	needDefaultRoute(b)
	size := envString("SWARMGATE_OFFLOAD_SIZE", "640x360")
	film := makeCBRFilm(b, seconds, mbps, size)
	capRate := int64(1.5 * mbps * 1e6 / 8)
	fi, err := os.Stat(film)
	if err != nil {
		b.Fatal(err)
	}
	reportf("film: %d s at %.1f Mbit/s, %s, %.1f MiB; cap %.0f KB/s (one copy in %.0f s)", seconds, mbps, size, float64(fi.Size())/(1<<20),
		float64(capRate)/1e3, float64(fi.Size())/float64(capRate))
	seeder := seedFile(b, film, 256<<10)
	pages := newPlainPages(b)

	b.ResetTimer()
	for range b.N {
		for _, c := range cases {
			f := strings.Split(c, ":")
			if len(f) != 4 {
				b.Fatalf("case %q: want viewers:cap:sharing:page", c)
			}
			n, _ := strconv.Atoi(f[0])
			rate := int64(0)
			if f[1] == "capped" {
				rate = capRate
			}
			res := runOffloadCase(b, offloadCase{viewers: n, rate: rate, sharing: f[2] == "on", watch: f[3] == "watch",
				seeder: seeder, pages: pages, length: fi.Size(), seconds: seconds})
			reportf("%-22s egress %.2f× the file (%.1f MiB: WebRTC %.1f, HTTP %.1f), from browsers %.1f MiB (%.0f %% of what viewers got); "+
				"opened at %s s; done %d of %d, finish %s s (slowest ÷ fastest %.2f; since the first viewer opened: %s s); stalls %d, %.1f s stalled (%.1f s of it with the CPU ≥ 95 %% busy); declined requests %d; machine CPU %.0f %% busy, ≥ 95 %% for %.0f of %.0f s",
				c, res.egress, res.egressBytes/(1<<20), res.toWebRTC/(1<<20), res.toHTTP/(1<<20), res.fromBrowsers/(1<<20), 100*res.browserShare,
				fmtTimes(res.opened), res.done, n, fmtTimes(res.finish), res.spread, fmtTimes(res.sinceFirst), res.stalls, res.stalledSeconds, res.stalledSaturated, res.declined, 100*res.cpuBusy, res.cpuSaturated, res.cpuSeconds)
			name := strings.ReplaceAll(c, ":", "-")
			b.ReportMetric(res.egress, name+"-egress")
		}
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
}

type offloadCase struct {
	viewers int
	rate    int64
	sharing bool
	watch   bool
	seeder  *fileSeeder
	pages   *plainPages
	length  int64
	seconds int
}

type offloadResult struct {
	egress, egressBytes, toWebRTC, toHTTP float64
	fromBrowsers, browserShare            float64
	done                                  int
	finish                                []float64 // s since each viewer opened
	sinceFirst                            []float64 // s since the first viewer opened
	opened                                []float64 // when each viewer opened, s since the first
	spread                                float64
	stalls                                int
	stalledSeconds                        float64
	declined                              int64
	cpuBusy                               float64 // of the machine's CPU time while the case ran, 0..1
	cpuSaturated, cpuSeconds              float64 // seconds of it with the CPU ≥ 95 % busy, of all
	stalledSaturated                      float64 // seconds stalled while the CPU was ≥ 95 % busy
}

// viewerState is what a page reports: the plain page's window.__s, or our watch page's state
// with its stalls.
type viewerState struct {
	Done     bool         `json:"done"`
	DoneAt   float64      `json:"doneAt"` // ms since the page started
	Gateway  float64      `json:"gateway"`
	Browsers float64      `json:"browsers"`
	Webseed  float64      `json:"webseed"`
	Stalls   int          `json:"stalls"`
	Stalled  float64      `json:"stalled"`  // seconds
	StallLog [][5]float64 `json:"stallLog"` // per stall: film time, seconds buffered ahead, ms, browser peers, page ms at its start (watchStallsJS)
	// FirstFrame is when the watch page first played, ms since it started; Time, Paused and
	// ReadyState are its video's.
	FirstFrame float64 `json:"firstFrame"`
	Time       float64 `json:"time"`
	Paused     bool    `json:"paused"`
	ReadyState int     `json:"readyState"`
}

func runOffloadCase(b *testing.B, c offloadCase) offloadResult {
	srv := startGateway(b, func(cfg *gateway.Config) {
		cfg.UploadRate = c.rate
		cfg.UploadSharing = c.sharing
	})
	base := srv.URL
	v := addMagnet(b, base, c.seeder.Magnet())
	mi := fetchMetainfoBytes(b, base, v.InfoHash)
	var cfg struct {
		PeerID string `json:"peer_id"`
	}
	getJSONInto(b, base+"/api/config", &cfg)

	cpu := sampleCPU()
	oneBrowser := os.Getenv("SWARMGATE_OFFLOAD_ONE_BROWSER") != ""
	window := os.Getenv("SWARMGATE_OFFLOAD_WINDOW")
	browsers := make([]*browser, c.viewers)
	started := make([]time.Time, c.viewers)
	for i := range browsers {
		opts := browserOptions{name: fmt.Sprintf("viewer%d", i)}
		if c.watch {
			opts.initScripts = []string{watchStallsJS}
		}
		if oneBrowser && i > 0 {
			opts.tabOf = browsers[0]
		}
		if window != "" {
			opts.flags = append(opts.flags, "window-size="+strings.Replace(window, "x", ",", 1))
		}
		browsers[i] = startBrowser(b, opts)
		started[i] = time.Now()
		if c.watch {
			browsers[i].navigate(base + "/watch/" + v.InfoHash + "?file=0")
		} else {
			browsers[i].navigate(c.pages.url(base, cfg.PeerID, mi))
		}
		time.Sleep(2 * time.Second)
	}
	bound := 3*time.Minute + time.Duration(c.seconds)*time.Second
	if c.rate > 0 {
		bound += time.Duration(c.length/c.rate) * time.Second
	}
	deadline := time.Now().Add(bound)
	states := make([]viewerState, c.viewers)
	var res offloadResult
	trace, lastTrace := os.Getenv("SWARMGATE_OFFLOAD_TRACE") != "", time.Time{}
	for time.Now().Before(deadline) {
		all := true
		for i, br := range browsers {
			expr := `window.__s`
			if c.watch {
				expr = `(() => { const s = window.swarmgate?.stats || {}; const v = document.getElementById("player"); const st = window.__stalls || {n: 0, ms: 0, since: 0};
				  return {done: v.ended || v.currentTime >= v.duration - 0.5, doneAt: performance.now(), gateway: s.fromGateway || 0, browsers: s.fromBrowsers || 0, webseed: s.fromWebseed || 0,
				          stalls: st.n, stalled: (st.ms + (st.since ? performance.now() - st.since : 0)) / 1000, firstFrame: st.first, stallLog: st.log || [],
				          time: v.currentTime, paused: v.paused, readyState: v.readyState} })()`
			}
			var s viewerState
			if err := br.eval(0, expr, &s); err == nil {
				if trace && time.Since(lastTrace) >= 10*time.Second {
					reportf("%4.0f s viewer%d: done %v, video at %.1f s (paused %v, ready %d), stalls %d (%.1f s), from gateway %.1f MiB, browsers %.1f MiB, webseed %.1f MiB",
						time.Since(started[0]).Seconds(), i, s.Done, s.Time, s.Paused, s.ReadyState, s.Stalls, s.Stalled, s.Gateway/(1<<20), s.Browsers/(1<<20), s.Webseed/(1<<20))
				}
				if !states[i].Done {
					states[i] = s
				} else {
					states[i].Gateway, states[i].Browsers, states[i].Webseed = s.Gateway, s.Browsers, s.Webseed
				}
			}
			all = all && states[i].Done
		}
		if trace && time.Since(lastTrace) >= 10*time.Second {
			lastTrace = time.Now()
		}
		if all {
			break
		}
		time.Sleep(time.Second)
	}
	saturated, busy := cpu.stop()
	res.cpuBusy = busy
	for _, span := range saturated {
		res.cpuSaturated += span[1].Sub(span[0]).Seconds()
	}
	res.cpuSeconds = time.Since(cpu.start).Seconds()

	var tv struct {
		Bytes struct {
			ToWebRTC float64 `json:"to_webrtc"`
			ToHTTP   float64 `json:"to_http"`
		} `json:"bytes"`
	}
	getJSONInto(b, base+"/api/torrents/"+v.InfoHash, &tv)
	res.toWebRTC, res.toHTTP = tv.Bytes.ToWebRTC, tv.Bytes.ToHTTP
	res.egressBytes = res.toWebRTC + res.toHTTP
	res.egress = res.egressBytes / float64(c.length)
	res.declined = srv.Gateway.DeclinedRequests()
	if st := srv.Gateway.UploadSharingStats(); st != (torrent.UploadSharingStats{}) {
		reportf("upload sharing: pieces offered fresh %d, at a front %d (%d of them while busy: stuck or slow), requests rejected %d, pages' sg_needs messages %d",
			st.Fresh, st.Front, st.Escalated, st.Declined, st.Told)
	}
	var got float64
	fastest, slowest := 0.0, 0.0
	for i, s := range states {
		res.opened = append(res.opened, started[i].Sub(started[0]).Seconds())
		res.fromBrowsers += s.Browsers
		got += s.Browsers + s.Gateway + s.Webseed
		res.stalls += s.Stalls
		res.stalledSeconds += s.Stalled
		for _, st := range s.StallLog {
			// The page's clock starts about when it was opened.
			from := started[i].Add(time.Duration(st[4]) * time.Millisecond)
			to := from.Add(time.Duration(st[2]) * time.Millisecond)
			for _, span := range saturated {
				if lo, hi := later(from, span[0]), earlier(to, span[1]); hi.After(lo) {
					res.stalledSaturated += hi.Sub(lo).Seconds()
				}
			}
		}
		if s.Done {
			res.done++
			t := s.DoneAt / 1000
			res.finish = append(res.finish, t)
			res.sinceFirst = append(res.sinceFirst, started[i].Sub(started[0]).Seconds()+t)
			if fastest == 0 || t < fastest {
				fastest = t
			}
			slowest = max(slowest, t)
		}
	}
	if got > 0 {
		res.browserShare = res.fromBrowsers / got
	}
	if fastest > 0 {
		res.spread = slowest / fastest
	}
	if c.watch {
		// How each page played: a page that fell back to the gateway's /stream, or never handed
		// over from the quick start, fetched the film over HTTP.
		for i, br := range browsers {
			var ps struct {
				Mode, Source, Message, Visibility, Shown string
				Marks                                    map[string]float64
				Handover                                 []map[string]any
			}
			if err := br.eval(0, watchPageStateJS, &ps); err == nil {
				reportf("viewer%d: first frame %.0f ms, stalls %d (%.1f s; film s/buffered ahead s/ms/browser peers/page ms: %v), mode %s, source %s, marks %v; %q; hand-over tries %v; page %s, video shown at %s px", i, states[i].FirstFrame,
					states[i].Stalls, states[i].Stalled, states[i].StallLog, ps.Mode, ps.Source, ps.Marks, ps.Message, ps.Handover, ps.Visibility, ps.Shown)
				if trace {
					var wires []string
					if err := br.eval(0, `window.__stalls?.wires || []`, &wires); err == nil {
						for _, w := range wires {
							reportf("viewer%d: %s", i, w)
						}
					}
				}
			}
		}
	}
	// The tabs before the browser they are in.
	for i := len(browsers) - 1; i >= 0; i-- {
		browsers[i].stop()
	}
	return res
}

// cpuTimes is the machine's CPU time so far, busy and all, in clock ticks (/proc/stat; zero
// where there is none), and when it was read: how loaded the machine was tells a stall for want
// of CPU from one for want of data.
func cpuTimes() (busy, all uint64, at time.Time) {
	at = time.Now()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, at
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseUint(f, 10, 64)
		all += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, all, at
}

// cpuSampler notes, every half second, the spans in which the machine's CPU was ≥ 95 % busy.
type cpuSampler struct {
	start  time.Time
	done   chan struct{}
	result chan cpuSample
}

// cpuSample is what a cpuSampler saw: the saturated spans, and the share of the CPU time that
// was busy over all of it (0..1).
type cpuSample struct {
	saturated [][2]time.Time
	busy      float64
}

func sampleCPU() *cpuSampler {
	s := &cpuSampler{start: time.Now(), done: make(chan struct{}), result: make(chan cpuSample, 1)}
	go func() {
		var spans [][2]time.Time
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		firstBusy, firstAll, _ := cpuTimes()
		lastBusy, lastAll, lastAt := firstBusy, firstAll, s.start
		for {
			stopping := false
			select {
			case <-s.done:
				stopping = true
			case <-tick.C:
			}
			busy, all, at := cpuTimes()
			if all > lastAll && float64(busy-lastBusy) >= 0.95*float64(all-lastAll) {
				spans = append(spans, [2]time.Time{lastAt, at})
			}
			lastBusy, lastAll, lastAt = busy, all, at
			if stopping {
				res := cpuSample{saturated: spans}
				if all > firstAll {
					res.busy = float64(busy-firstBusy) / float64(all-firstAll)
				}
				s.result <- res
				return
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the saturated spans and the busy share.
func (s *cpuSampler) stop() (saturated [][2]time.Time, busy float64) {
	close(s.done)
	r := <-s.result
	return r.saturated, r.busy
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// reportf prints a line of the offload report at once, on stderr: testing keeps only the first ten
// lines a benchmark logs, and a run of every case takes half an hour.
func reportf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "offload: "+format+"\n", args...)
}

// watchPageStateJS is the watch page's mode, source and message, and its swarmgate:* marks (ms
// since navigation).
const watchPageStateJS = `(() => {
  const s = window.swarmgate || {}; const marks = {};
  for (const m of performance.getEntriesByType("mark")) if (m.name.startsWith("swarmgate:")) marks[m.name.slice(10)] = Math.round(m.startTime);
  return {mode: s.mode || "", source: s.source || "", message: s.message || "", marks, handover: s.handover || [], visibility: document.visibilityState,
    shown: (v => v ? v.clientWidth + "x" + v.clientHeight : "")(document.getElementById("player"))};
})()`

// watchStallsJS, run before the watch page's own scripts, counts its stalls: "waiting" of the
// video that has the picture (id "player": the quick start's, then the one it hands over to)
// after it first played, and for how long; and when it first played. Each stall is logged as
// [film time, seconds the video held buffered ahead of it, ms it lasted, the browsers its torrent
// was connected to then, ms since the page opened]: a stall with nothing buffered ahead waited for data; one with seconds
// ahead waited for the decoder (the machine).
const watchStallsJS = `(() => {
  const st = window.__stalls = {n: 0, ms: 0, first: 0, since: 0, log: [], wires: []};
  const isPlayer = e => e.target instanceof HTMLMediaElement && e.target.id === "player";
  const ahead = v => {
    for (let i = 0; i < v.buffered.length; i++) {
      if (v.buffered.start(i) <= v.currentTime + 0.1 && v.currentTime <= v.buffered.end(i)) return v.buffered.end(i) - v.currentTime;
    }
    return 0;
  };
  document.addEventListener("playing", e => {
    if (!isPlayer(e)) return;
    const now = performance.now();
    if (!st.first) st.first = now;
    if (st.since) { st.ms += now - st.since; st.log.at(-1)[2] = Math.round(now - st.since); st.since = 0 }
  }, true);
  document.addEventListener("waiting", e => {
    if (!isPlayer(e) || !st.first || st.since) return;
    st.n++;
    st.since = performance.now();
    st.log.push([Math.round(e.target.currentTime * 10) / 10, Math.round(ahead(e.target) * 10) / 10, 0, window.swarmgate?.stats?.browserPeers ?? -1, Math.round(performance.now())]);
    const n = st.n, wires = () => JSON.stringify(window.swarmgate?.wires || []);
    st.wires.push("stall " + n + " at start: " + wires());
    setTimeout(() => { if (st.n === n && st.since) st.wires.push("stall " + n + " 1 s in: " + wires()) }, 1000);
  }, true);
})()`

func fmtTimes(ts []float64) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = strconv.FormatFloat(t, 'f', 1, 64)
	}
	return strings.Join(parts, " ")
}

func getJSONInto(t testing.TB, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

func fetchMetainfoBytes(t testing.TB, base, ih string) []byte {
	t.Helper()
	fetchMetainfo(t, base, ih) // waits for the metadata
	res, err := http.Get(base + "/api/torrents/" + ih + "/metainfo")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// makeCBRFilm makes a constant-bitrate H.264/AAC MP4 of the given length, bitrate and picture
// size (WxH).
func makeCBRFilm(t testing.TB, seconds int, mbps float64, size string) string {
	path := filepath.Join(t.TempDir(), fmt.Sprintf("cbr-%ds-%gM-%s.mp4", seconds, mbps, size))
	rate := fmt.Sprintf("%dk", int(mbps*1000))
	args := []string{"-v", "error", "-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
		"-b:v", rate, "-minrate", rate, "-maxrate", rate, "-bufsize", rate, "-x264-params", "nal-hrd=cbr:force-cfr=1",
		"-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart", path}
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return path
}

// plainPages serves a page running plain webtorrent@3 (the vendored build) that fetches a
// torrent whole into memory: what any webtorrent app would do, none of our player's choices.
type plainPages struct {
	srv *httptest.Server
}

func newPlainPages(t testing.TB) *plainPages {
	_, here, _, _ := runtime.Caller(0)
	vendor := filepath.Join(filepath.Dir(here), "..", "web", "static", "vendor", "webtorrent.min.js")
	if _, err := os.Stat(vendor); err != nil {
		t.Fatalf("webtorrent build: %v (run make web)", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/webtorrent.min.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		http.ServeFile(w, r, vendor)
	})
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, plainPageHTML, q.Get("mi"), strings.ToLower(q.Get("gw")))
	})
	p := &plainPages{srv: httptest.NewServer(mux)}
	t.Cleanup(p.srv.Close)
	return p
}

func (p *plainPages) url(_, gatewayPeerID string, metainfo []byte) string {
	return p.srv.URL + "/plain?gw=" + gatewayPeerID + "&mi=" + base64.URLEncoding.EncodeToString(metainfo)
}

// plainPageHTML: the metainfo (the gateway's, naming its tracker and webseed) and the gateway's
// peer id come in the query; the page counts bytes by the kind of wire, like our player does.
const plainPageHTML = `<!doctype html><meta charset="utf-8"><title>plain webtorrent</title>
<script type="module">
import WebTorrent from '/webtorrent.min.js'
const b64 = %q, gw = %q
const mi = Uint8Array.from(atob(b64.replace(/-/g, '+').replace(/_/g, '/')), c => c.charCodeAt(0))
const s = window.__s = { done: false, doneAt: 0, gateway: 0, browsers: 0, webseed: 0 }
const client = new WebTorrent({ tracker: { rtcConfig: { iceServers: [] } } })
const t = client.add(mi, {})
const kind = w => w.type === 'webSeed' ? 'webseed' : ((w.peerId || '').toLowerCase() === gw ? 'gateway' : 'browsers')
t.on('wire', w => w.on('download', n => { s[kind(w)] += n }))
t.on('done', () => { s.done = true; s.doneAt = performance.now() })
</script>`
