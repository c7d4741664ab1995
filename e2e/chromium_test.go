package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/tracing"
	"github.com/chromedp/chromedp"
)

// This file is the harness for the real-browser tests: it finds Chromium, starts one headless
// browser process per viewer, records what its pages write to the console, and reads the page
// state by polling. Everything stays on loopback.

// inCI reports whether the tests run in CI (CI=true), where a missing tool is a failure: CI
// installs ffmpeg and chromium with apt, so their absence there is a broken setup, not a choice.
func inCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "false" && v != "0"
}

// missingTool skips the test outside CI and fails it in CI.
func missingTool(t testing.TB, what, install string) {
	t.Helper()
	if inCI() {
		t.Fatalf("%s not found, and CI is set: CI must install it (%s)", what, install)
	}
	t.Skipf("%s not found: skipping the browser tests (install it: %s; with CI=true this is a failure)", what, install)
}

// chromiumPath finds the browser: $SWARMGATE_CHROMIUM, then chromium or chromium-browser in PATH.
func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, name := range []string{os.Getenv("SWARMGATE_CHROMIUM"), "chromium", "chromium-browser", "/usr/bin/chromium"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	missingTool(t, "Chromium", "apt-get install chromium")
	return ""
}

// chromiumFlags are the browser's switches. chromedp.DefaultExecAllocatorOptions is deliberately
// not used: it turns features on and off (NetworkServiceInProcess, Translate, automation) that have
// nothing to do with these tests and would make the browser less like a viewer's. The network rules
// here allow loopback only, so everything that phones home is off; WebRTC must gather loopback
// candidates and show real IPs instead of mDNS names, or ICE never completes on a host with no
// other interface (REFERENCE.md §5).
var chromiumFlags = []string{
	"headless",
	"no-sandbox",
	"disable-gpu",
	"disable-quic",
	"no-first-run",
	"no-default-browser-check",
	"disable-background-networking",
	"disable-component-update",
	"disable-sync",
	"allow-loopback-in-peer-connection",
	"disable-features=WebRtcHideLocalIpsWithMdns",
	"autoplay-policy=no-user-gesture-required",
}

// browserOptions change how a browser's pages start.
type browserOptions struct {
	// noWebRTC removes RTCPeerConnection from every document before its scripts run, as a browser
	// without WebRTC (or with it blocked) would look to the page.
	noWebRTC bool
	// initScripts run in every document before its own scripts.
	initScripts []string
	// name tells the browser's log lines apart when a test has several.
	name string
	// tabOf, when set, opens the "browser" as a tab of that running one, in a browser context of
	// its own (its own storage, cache and service workers: another viewer, as a fresh profile
	// is), sharing its browser, GPU and network processes. For benchmarks with many viewers on
	// one machine, where those processes' per-browser CPU is the machine's, not a viewer's.
	tabOf *browser
	// flags are Chromium flags besides chromiumFlags ("name=value" or "name"); not for a tab.
	flags []string
	// noScript disables the pages' scripts, as a browser with JavaScript off (DevTools' own
	// evaluations still run).
	noScript bool
	// blockURLs are URL patterns (URLPattern syntax, absolute: "*://*:*/static/watch.js") the tab
	// fails to load, as a network error.
	blockURLs []string
}

// browser is one headless Chromium process with one tab.
type browser struct {
	t    testing.TB
	name string
	ctx  context.Context // the tab; its first Run started the browser
	stop func()          // closes the browser; idempotent

	mu       sync.Mutex
	console  []string                                                            // console messages, exceptions, browser log entries
	contexts map[runtime.ExecutionContextID]*runtime.ExecutionContextDescription // live JS contexts of the tab's frames
	output   tailBuffer                                                          // the process's stdout and stderr, last bytes

	trace     [][]byte      // trace events collected since startTrace
	traceDone chan struct{} // closed when the trace is complete
}

// startBrowser starts a fresh Chromium (its own profile, so no storage or service worker is shared
// with another browser) and closes it when the test ends. On failure the test log gets the pages'
// console and the browser's own output.
func startBrowser(t testing.TB, opts browserOptions) *browser {
	t.Helper()
	path := chromiumPath(t)
	for attempt := 1; ; attempt++ {
		b, err := launchBrowser(t, path, opts)
		if err == nil {
			return b
		}
		// On a loaded machine Chromium has exited before its DevTools endpoint was up, with no
		// word why but crashpad's (chromedp: "chrome failed to start"; once in CI, in a cluster
		// test). Starting a browser is not what a test tests: one more try.
		if attempt == 2 || !strings.Contains(err.Error(), "chrome failed to start") {
			t.Fatalf("%s: start Chromium %s: %v\n%s", b.name, path, err, b.output.String())
		}
		t.Logf("%s: Chromium did not start (%v), trying again; its output:\n%s", b.name, err, b.output.String())
		b.stop()
	}
}

// launchBrowser starts one Chromium with its tab, stopped at t's cleanup (or by b.stop).
func launchBrowser(t testing.TB, path string, opts browserOptions) (*browser, error) {
	if opts.name == "" {
		opts.name = "browser"
	}
	b := &browser{t: t, name: opts.name, contexts: map[runtime.ExecutionContextID]*runtime.ExecutionContextDescription{}}
	b.output.max = 8 << 10

	// The user data dir is left to chromedp: it makes a fresh one per process and, after the
	// browser exits, kills Chromium's helper processes that still use it before removing it; a
	// t.TempDir would race those helpers in its own cleanup.
	allocOpts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.CombinedOutput(&b.output)}
	for _, f := range append(slices.Clone(chromiumFlags), opts.flags...) {
		name, value, ok := strings.Cut(f, "=")
		if ok {
			allocOpts = append(allocOpts, chromedp.Flag(name, value))
		} else {
			allocOpts = append(allocOpts, chromedp.Flag(name, true))
		}
	}
	var ctx context.Context
	var cancelTab, cancelAlloc context.CancelFunc
	if opts.tabOf != nil {
		// Chromium's output stays the first browser's; a new browser context opens in a window of
		// its own, so the tab is visible like the others.
		ctx, cancelTab = chromedp.NewContext(opts.tabOf.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(b.onEvent))
		cancelAlloc = func() {}
	} else {
		var allocCtx context.Context
		allocCtx, cancelAlloc = chromedp.NewExecAllocator(context.Background(), allocOpts...)
		ctx, cancelTab = chromedp.NewContext(allocCtx, chromedp.WithListener(b.onEvent))
	}
	b.ctx = ctx
	var once sync.Once
	b.stop = func() {
		once.Do(func() {
			if t.Failed() {
				b.dump()
			}
			// A graceful close first, bounded (a tab: closed, its browser context disposed);
			// cancelling the allocator then kills whatever is left and waits for the process to
			// exit.
			closeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_ = chromedp.Cancel(closeCtx)
			cancel()
			cancelTab()
			cancelAlloc()
		})
	}
	t.Cleanup(b.stop)

	// The first Run starts the browser; it must not carry a timeout (that would end the browser
	// with it), so a watchdog bounds it instead.
	watchdog := time.AfterFunc(30*time.Second, cancelTab)
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tgt, log.Enable, cdp.Empty{}); err != nil {
			return err
		}
		if opts.noScript {
			if _, err := cdp.Call(ctx, tgt, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
				return err
			}
		}
		if len(opts.blockURLs) > 0 {
			var blocked network.SetBlockedURLsParams
			for _, u := range opts.blockURLs {
				blocked.URLPatterns = append(blocked.URLPatterns, &network.BlockPattern{URLPattern: u, Block: true})
			}
			if _, err := cdp.Call(ctx, tgt, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			if _, err := cdp.Call(ctx, tgt, network.SetBlockedURLs, blocked); err != nil {
				return err
			}
		}
		scripts := opts.initScripts
		if opts.noWebRTC {
			scripts = append(scripts, "delete window.RTCPeerConnection; delete window.webkitRTCPeerConnection;")
		}
		for _, src := range scripts {
			p := page.AddScriptToEvaluateOnNewDocumentParams{Source: src}
			if _, err := cdp.Call(ctx, tgt, page.AddScriptToEvaluateOnNewDocument, p); err != nil {
				return err
			}
		}
		return nil
	}))
	if !watchdog.Stop() {
		err = fmt.Errorf("browser did not start within 30 s: %w", err)
	}
	return b, err
}

// onEvent runs in the tab's message loop: it must return fast and run no command.
func (b *browser) onEvent(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now().Format("15:04:05.000")
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		args := make([]string, 0, len(ev.Args))
		for _, a := range ev.Args {
			args = append(args, remoteObjectText(a))
		}
		where := ""
		if st := ev.StackTrace; st != nil && len(st.CallFrames) > 0 {
			f := st.CallFrames[0]
			where = fmt.Sprintf(" (%s:%d)", f.URL, f.LineNumber+1)
		}
		b.console = append(b.console, fmt.Sprintf("%s console.%s [ctx %d] %s%s", now, ev.Type, ev.ExecutionContextID, strings.Join(args, " "), where))
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil {
			text += " " + remoteObjectText(d.Exception)
		}
		b.console = append(b.console, fmt.Sprintf("%s EXCEPTION [ctx %d] %s (%s:%d:%d)", now, d.ExecutionContextID, text, d.URL, d.LineNumber+1, d.ColumnNumber+1))
	case *tracing.EventDataCollected:
		for _, v := range ev.Value {
			b.trace = append(b.trace, []byte(v))
		}
	case *tracing.EventTracingComplete:
		if b.traceDone != nil {
			close(b.traceDone)
			b.traceDone = nil
		}
	case *log.EventEntryAdded:
		e := ev.Entry
		b.console = append(b.console, fmt.Sprintf("%s log.%s [%s] %s %s", now, e.Level, e.Source, e.Text, e.URL))
	case *runtime.EventExecutionContextCreated:
		b.contexts[ev.Context.ID] = ev.Context
	case *runtime.EventExecutionContextDestroyed:
		for id, d := range b.contexts {
			if d.UniqueID == ev.ExecutionContextUniqueID {
				delete(b.contexts, id)
			}
		}
	case *runtime.EventExecutionContextsCleared:
		clear(b.contexts)
	}
}

func remoteObjectText(o *runtime.RemoteObject) string {
	switch {
	case o == nil:
		return "<nil>"
	case len(o.Value) > 0:
		var s string
		if json.Unmarshal(o.Value, &s) == nil {
			return s
		}
		return string(o.Value)
	case o.UnserializableValue != "":
		return string(o.UnserializableValue)
	case o.Description != "":
		return o.Description
	}
	return string(o.Type)
}

// consoleLines returns a copy of what the pages have logged so far.
func (b *browser) consoleLines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.console)
}

// dump writes the console and the browser's output to the test log.
func (b *browser) dump() {
	lines := b.consoleLines()
	b.t.Logf("%s: %d console lines:\n%s", b.name, len(lines), strings.Join(lines, "\n"))
	var kept []string
	for _, l := range strings.Split(b.output.String(), "\n") {
		// Without a system bus (containers, CI) Chromium complains about D-Bus all the time.
		if !strings.Contains(l, "dbus") && !strings.Contains(l, "unexpected operator") && strings.TrimSpace(l) != "" {
			kept = append(kept, l)
		}
	}
	if out := strings.Join(kept, "\n"); out != "" {
		b.t.Logf("%s: Chromium output (last %d bytes):\n%s", b.name, b.output.max, out)
	}
}

// navigate opens url in the tab and waits for its load event.
func (b *browser) navigate(url string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("%s: navigate to %s: %v", b.name, url, err)
	}
}

// startTrace starts recording a Chromium performance trace of the tab (what its threads did:
// tasks, parsing, script compile and run, layout, media), for endTrace to save.
func (b *browser) startTrace() {
	b.t.Helper()
	b.mu.Lock()
	b.trace, b.traceDone = nil, make(chan struct{})
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	cats := []string{"toplevel", "devtools.timeline", "disabled-by-default-devtools.timeline", "v8", "v8.execute", "blink", "loading", "media"}
	if _, err := chromedp.Call(ctx, tracing.Start, tracing.StartParams{TraceConfig: &tracing.TraceConfig{IncludedCategories: cats}}); err != nil {
		b.t.Fatalf("%s: start tracing: %v", b.name, err)
	}
}

// endTrace stops the trace and writes it to path in Chrome's JSON trace format (open it in
// chrome://tracing or Perfetto).
func (b *browser) endTrace(path string) {
	b.t.Helper()
	b.mu.Lock()
	done := b.traceDone
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, tracing.End, cdp.Empty{}); err != nil {
		b.t.Fatalf("%s: end tracing: %v", b.name, err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		b.t.Fatalf("%s: the trace did not complete", b.name)
	}
	b.mu.Lock()
	events := b.trace
	b.mu.Unlock()
	out := []byte(`{"traceEvents":[`)
	for i, e := range events {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, e...)
	}
	out = append(out, "]}\n"...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// eval evaluates a JS expression in the top document (ctxID 0) or in the given JS context and
// decodes its JSON value into out. Promises are awaited.
func (b *browser) eval(ctxID runtime.ExecutionContextID, expr string, out any) error {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, runtime.Evaluate, runtime.EvaluateParams{
		Expression:    expr,
		ContextID:     ctxID,
		ReturnByValue: ptr(true),
		AwaitPromise:  ptr(true),
	})
	if err != nil {
		return err
	}
	if res.ExceptionDetails != nil {
		d := res.ExceptionDetails
		if d.Exception != nil {
			return fmt.Errorf("%s: %s", d.Text, remoteObjectText(d.Exception))
		}
		return fmt.Errorf("%s", d.Text)
	}
	if out == nil || res.Result == nil || len(res.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(res.Result.Value, out)
}

// frameContext finds the default JS context of a frame whose origin is origin and that is not
// the tab's main frame: the document of an iframe from that origin. 0 when there is none.
func (b *browser) frameContext(origin string) runtime.ExecutionContextID {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	tree, err := chromedp.Call(ctx, page.GetFrameTree, cdp.Empty{})
	if err != nil || tree.FrameTree == nil || tree.FrameTree.Frame == nil {
		return 0
	}
	mainID := string(tree.FrameTree.Frame.ID)
	b.mu.Lock()
	defer b.mu.Unlock()
	var best runtime.ExecutionContextID
	for id, d := range b.contexts {
		var aux struct {
			IsDefault bool   `json:"isDefault"`
			FrameID   string `json:"frameId"`
		}
		_ = json.Unmarshal(d.AuxData, &aux)
		if aux.IsDefault && aux.FrameID != mainID && d.Origin == origin && id > best {
			best = id
		}
	}
	return best
}

// frames lists the tab's frames (url, and unreachable url for an error page), depth first.
func (b *browser) frames() []*cdp.Frame {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	tree, err := chromedp.Call(ctx, page.GetFrameTree, cdp.Empty{})
	if err != nil || tree.FrameTree == nil {
		return nil
	}
	var out []*cdp.Frame
	var walk func(*page.FrameTree)
	walk = func(ft *page.FrameTree) {
		out = append(out, ft.Frame)
		for _, c := range ft.ChildFrames {
			walk(c)
		}
	}
	walk(tree.FrameTree)
	return out
}

func ptr[T any](v T) *T { return &v }

// pageView is what a test reads of a player page: the page's window.swarmgate (nil when the page
// has none) and the state of its video element.
type pageView struct {
	SG      *swarmgateState `json:"sg"`
	SGError string          `json:"sgError"`
	Video   *videoState     `json:"video"`
	Message string          `json:"message"`
}

type swarmgateState struct {
	State    string          `json:"state"`
	Mode     string          `json:"mode"`
	Message  string          `json:"message"`
	InfoHash string          `json:"infohash"`
	File     json.RawMessage `json:"file"`
	Stats    struct {
		GatewayPeers  float64 `json:"gatewayPeers"`
		BrowserPeers  float64 `json:"browserPeers"`
		WebseedPeers  float64 `json:"webseedPeers"`
		DownloadSpeed float64 `json:"downloadSpeed"`
		UploadSpeed   float64 `json:"uploadSpeed"`
		FromGateway   float64 `json:"fromGateway"`
		FromBrowsers  float64 `json:"fromBrowsers"`
		FromWebseed   float64 `json:"fromWebseed"`
		Uploaded      float64 `json:"uploaded"`
		P2PShare      float64 `json:"p2pShare"`
	} `json:"stats"`
	Wires []struct {
		Kind         string  `json:"kind"`
		PeerChoking  bool    `json:"peerChoking"`
		AmChoking    bool    `json:"amChoking"`
		Requests     int     `json:"requests"`
		PeerRequests int     `json:"peerRequests"`
		Down         float64 `json:"down"`
		Up           float64 `json:"up"`
	} `json:"wires"`
}

// received is every byte the page counts as downloaded, by source.
func (s *swarmgateState) received() float64 {
	return s.Stats.FromGateway + s.Stats.FromBrowsers + s.Stats.FromWebseed
}

type videoState struct {
	CurrentTime float64 `json:"currentTime"`
	Duration    float64 `json:"duration"` // -1 while unknown or infinite
	Paused      bool    `json:"paused"`
	Ended       bool    `json:"ended"`
	Seeking     bool    `json:"seeking"`
	ReadyState  int     `json:"readyState"`
	Controls    bool    `json:"controls"`
	Src         string  `json:"src"`
	Error       *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// pageViewJS reads a pageView; the page's object is copied through JSON so that nothing in it
// (functions, cycles) can break the read.
const pageViewJS = `(() => {
  const out = {sg: null, sgError: "", video: null, message: ""};
  try { out.sg = window.swarmgate ? JSON.parse(JSON.stringify(window.swarmgate)) : null; }
  catch (e) { out.sgError = String(e); }
  const v = document.getElementById("player") || document.querySelector("video");
  if (v) out.video = {
    currentTime: v.currentTime,
    duration: Number.isFinite(v.duration) ? v.duration : -1,
    paused: v.paused, ended: v.ended, seeking: v.seeking, readyState: v.readyState, controls: v.controls,
    src: v.currentSrc || v.src || "",
    error: v.error ? {code: v.error.code, message: v.error.message} : null,
  };
  const m = document.getElementById("message");
  if (m) out.message = m.textContent.trim();
  return out;
})()`

func (v pageView) String() string {
	var s strings.Builder
	if v.SG == nil {
		s.WriteString("window.swarmgate: none")
		if v.SGError != "" {
			s.WriteString(" (" + v.SGError + ")")
		}
	} else {
		st := v.SG.Stats
		fmt.Fprintf(&s, "state=%q mode=%q message=%q peers(gw=%v br=%v ws=%v) from(gw=%.0f br=%.0f ws=%.0f) up=%.0f p2p=%.2f",
			v.SG.State, v.SG.Mode, v.SG.Message, st.GatewayPeers, st.BrowserPeers, st.WebseedPeers,
			st.FromGateway, st.FromBrowsers, st.FromWebseed, st.Uploaded, st.P2PShare)
	}
	if v.Video == nil {
		s.WriteString("; no video element")
	} else {
		fmt.Fprintf(&s, "; video t=%.2f/%.2f paused=%v seeking=%v ready=%d src=%q", v.Video.CurrentTime, v.Video.Duration,
			v.Video.Paused, v.Video.Seeking, v.Video.ReadyState, v.Video.Src)
		if v.Video.Error != nil {
			fmt.Fprintf(&s, " error=%d %q", v.Video.Error.Code, v.Video.Error.Message)
		}
	}
	if v.Message != "" {
		fmt.Fprintf(&s, "; #message=%q", v.Message)
	}
	return s.String()
}

// view reads the player state of the top document (ctxID 0) or of a frame's context.
func (b *browser) view(ctxID runtime.ExecutionContextID) (pageView, error) {
	var v pageView
	err := b.eval(ctxID, pageViewJS, &v)
	return v, err
}

// waitView polls view every 200 ms until cond holds, failing the test with the last view and
// cond's reason when within passes. It returns the view that satisfied cond.
func (b *browser) waitView(within time.Duration, ctxID func() runtime.ExecutionContextID, what string, cond func(pageView) (bool, string)) pageView {
	b.t.Helper()
	deadline := time.Now().Add(within)
	var last pageView
	lastReason := "never read"
	for {
		id := runtime.ExecutionContextID(0)
		if ctxID != nil {
			id = ctxID()
		}
		if ctxID == nil || id != 0 {
			v, err := b.view(id)
			if err != nil {
				lastReason = "read failed: " + err.Error()
			} else {
				last = v
				ok, reason := cond(v)
				if ok {
					return v
				}
				lastReason = reason
			}
		} else {
			lastReason = "no such frame yet"
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: %s: not within %v: %s; last view: %v", b.name, what, within, lastReason, last)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-b.ctx.Done():
			b.t.Fatalf("%s: %s: browser gone: %v; last view: %v", b.name, what, context.Cause(b.ctx), last)
		}
	}
}

// waitUntil polls cond every 200 ms until it holds or within passes (then the test fails with
// cond's last reason).
func waitUntil(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, reason := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, within, reason)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; w.max > 0 && over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}
