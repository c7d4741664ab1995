package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// milestonesJS records when the document's first <video> reaches each milestone, in ms since the
// document's navigation started (performance.now()'s origin). Capture listeners on window see the
// media events before the page's own handlers, whatever the page does.
const milestonesJS = `window.__milestones = {}; window.__busy = [];
try {
  new PerformanceObserver(l => { for (const e of l.getEntries()) window.__busy.push([Math.round(e.startTime), Math.round(e.duration),
    Math.round(e.renderStart ? e.renderStart - e.startTime : -1), Math.round(e.styleAndLayoutStart ? e.styleAndLayoutStart - e.startTime : -1),
    (e.scripts || []).map(s => [s.sourceURL.split("/").pop(), s.invokerType, s.invoker, Math.round(s.startTime), Math.round(s.duration), Math.round(s.forcedStyleAndLayoutDuration)])]) })
    .observe({type: "long-animation-frame", buffered: true});
} catch {}
for (const name of ["loadstart", "loadedmetadata", "canplay", "playing"]) {
  addEventListener(name, () => {
    if (window.__milestones[name] === undefined) window.__milestones[name] = performance.now();
  }, true);
}`

// collectJS adds to the media milestones when the page's DOM was ready and when the fetches that
// matter for a first frame ended (resource timing, same clock).
const collectJS = `(() => {
  const out = Object.assign({}, window.__milestones);
  const nav = performance.getEntriesByType("navigation")[0];
  if (nav) { out.domContentLoaded = nav.domContentLoadedEventEnd; out.document = nav.responseEnd }
  for (const e of performance.getEntriesByType("resource")) {
    for (const [key, part] of [["webtorrent.js", "webtorrent.min.js"], ["api/config", "/api/config"], ["metainfo", "/metainfo"],
        ["watch.js", "/static/watch.js"], ["player.js", "/static/player.js"], ["needs.js", "/static/needs.js"]]) {
      if (e.name.includes(part) && out[key] === undefined) out[key] = e.responseEnd;
    }
  }
  for (const m of performance.getEntriesByType("mark")) {
    if (m.name.startsWith("swarmgate:") && out[m.name] === undefined) out[m.name] = m.startTime;
  }
  return out;
})()`

// BenchmarkTimeToFirstFrame measures, per iteration, the time from navigation to the video's first
// "playing" event for the same H.264 file two ways, side by side:
//
//   - gateway: the watch page of a fresh gateway that has only the magnet (and so the metadata)
//     and none of the data, which a native TCP-only seeder holds; the page starts on the
//     gateway's /stream (its quick start) and hands over to webtorrent (service worker
//     registered on the spot: a first-time viewer), which the benchmark waits for;
//   - http: a plain page with <video src> on a loopback http.FileServer, what a browser does with
//     an ordinary file: the floor.
//
// Each side gets a fresh Chromium (fresh profile, no cache), started before the clock runs. It
// reports both as medians over b.N (gateway-ms, http-ms) and their ratio, the goal being ≤ 1.5×,
// and when the gateway's page handed the picture over to webtorrent (handover-ms); it logs each
// page's long animation frames before its first frame. SWARMGATE_TTFF_TRACE=dir saves a Chromium
// trace of each side's first run there (plain.json, gateway.json). Run:
//
//	go test -run '^$' -bench TimeToFirstFrame -benchtime 5x ./e2e/
func BenchmarkTimeToFirstFrame(b *testing.B) {
	path := testMedia(b, "test-h264.mp4")
	seeder := seedFile(b, path, 64<<10)

	mux := http.NewServeMux()
	mux.Handle("/media/", http.StripPrefix("/media/", http.FileServer(http.Dir(filepath.Dir(path)))))
	mux.HandleFunc("/plain.html", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>plain</title>
<video id="player" src="/media/%s" controls autoplay muted playsinline></video>`, filepath.Base(path))
	})
	plain := httptest.NewServer(mux)
	b.Cleanup(plain.Close)

	var gw, direct []map[string]float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// SWARMGATE_TTFF_TRACE=dir: a Chromium trace of the first run of each side, in dir.
		tracePath := func(side string) string {
			if dir := os.Getenv("SWARMGATE_TTFF_TRACE"); dir != "" && i == 0 {
				return filepath.Join(dir, side+".json")
			}
			return ""
		}
		direct = append(direct, firstFrameMilestones(b, plain.URL+"/plain.html", false, tracePath("plain")))

		srv := startGateway(b, nil)
		v := addMagnet(b, srv.URL, seeder.Magnet())
		fetchMetainfo(b, srv.URL, v.InfoHash)
		gw = append(gw, firstFrameMilestones(b, srv.URL+"/watch/"+v.InfoHash+"?file=0", true, tracePath("gateway")))
		if err := srv.Close(); err != nil {
			b.Error(err)
		}
	}
	b.StopTimer()

	g, h := medianOf(gw, "playing"), medianOf(direct, "playing")
	b.ReportMetric(0, "ns/op") // an iteration's wall time is set-up, not the figure
	b.ReportMetric(g, "gateway-ms")
	b.ReportMetric(h, "http-ms")
	b.ReportMetric(g/h, "ratio")
	b.ReportMetric(medianOf(gw, "swarmgate:handover"), "handover-ms")
	for _, side := range []struct {
		name string
		runs []map[string]float64
	}{{"plain HTTP", direct}, {"gateway", gw}} {
		var line strings.Builder
		for _, k := range []string{"document", "watch.js", "player.js", "needs.js", "domContentLoaded", "webtorrent.js", "api/config", "metainfo",
			"swarmgate:torrent", "swarmgate:webtorrent", "swarmgate:worker", "swarmgate:metainfo", "swarmgate:ready", "swarmgate:streaming",
			"loadstart", "loadedmetadata", "canplay", "playing", "swarmgate:handover-start", "swarmgate:handover"} {
			if m := medianOf(side.runs, k); m >= 0 {
				fmt.Fprintf(&line, " %s %.0f", k, m)
			}
		}
		var all []string
		for _, r := range side.runs {
			all = append(all, fmt.Sprintf("%.0f", r["playing"]))
		}
		b.Logf("%s, median ms since navigation over %d run(s):%s (playing per run: %s)", side.name, b.N, line.String(), strings.Join(all, " "))
	}
	b.Logf("time to first frame: gateway %.0f ms, plain HTTP %.0f ms, ratio %.2f× (goal ≤ 1.5×)", g, h, g/h)
}

// firstFrameMilestones opens url in a fresh browser, waits for the video's first "playing" (and
// with handover, for the player to hand the picture over to webtorrent, still in webtorrent
// mode) and returns the milestones (ms since navigation start) of collectJS.
func firstFrameMilestones(b *testing.B, url string, handover bool, tracePath string) map[string]float64 {
	b.Helper()
	br := startBrowser(b, browserOptions{name: "bench", initScripts: []string{milestonesJS}})
	defer br.stop()
	if tracePath != "" {
		br.startTrace()
	}
	br.navigate(url)
	var ms map[string]float64
	waitUntil(b, 60*time.Second, "first playing event at "+url, func() (bool, string) {
		if err := br.eval(0, collectJS, &ms); err != nil {
			return false, err.Error()
		}
		if _, ok := ms["playing"]; !ok {
			v, _ := br.view(0)
			return false, fmt.Sprintf("not yet: %v; milestones %v", v, ms)
		}
		return true, ""
	})
	if tracePath != "" {
		br.endTrace(tracePath)
		b.Logf("%s: trace in %s", url, tracePath)
	}
	// What kept the page's main thread busy before the first frame: long animation frames (over
	// 50 ms), with the scripts that ran in them.
	var busy []any
	if err := br.eval(0, `window.__busy || []`, &busy); err == nil {
		var before []any
		for _, f := range busy {
			if e, ok := f.([]any); ok && len(e) > 0 {
				if start, ok := e[0].(float64); ok && start < ms["playing"] {
					before = append(before, e)
				}
			}
		}
		b.Logf("%s: long frames before the first frame [start ms, duration, render starts after, style+layout after, scripts [url, type, invoker, start, ms, style+layout ms]]: %v", url, before)
	}
	if handover {
		waitUntil(b, 30*time.Second, "hand-over to webtorrent at "+url, func() (bool, string) {
			if err := br.eval(0, collectJS, &ms); err != nil {
				return false, err.Error()
			}
			v, _ := br.view(0)
			if v.SG != nil && (v.SG.State == "error" || v.SG.Mode != "webtorrent") {
				b.Fatalf("the page left webtorrent: %v", v)
			}
			_, ok := ms["swarmgate:handover"]
			return ok, fmt.Sprintf("not yet: %v; milestones %v", v, ms)
		})
	}
	return ms
}

// medianOf is the median of one milestone over runs, or -1 when no run has it.
func medianOf(runs []map[string]float64, key string) float64 {
	var xs []float64
	for _, r := range runs {
		if x, ok := r[key]; ok {
			xs = append(xs, x)
		}
	}
	if len(xs) == 0 {
		return -1
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}
