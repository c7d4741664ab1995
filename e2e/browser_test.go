package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/gateway"
)

// Real-browser tests: headless Chromium opens the gateway's pages and plays video that only a
// native (TCP) BitTorrent peer has. The page contract they check is window.swarmgate =
// {state, mode, message, infohash, file, stats{...}}, a <video id="player"> and a #message element.

// playingCond is a waitView condition: the page says "playing". A page that says "error" fails
// the test at once with its message.
func playingCond(t testing.TB) func(pageView) (bool, string) {
	return func(v pageView) (bool, string) {
		if v.SG == nil {
			return false, "page has no window.swarmgate"
		}
		if v.SG.State == "error" {
			t.Fatalf("page reports an error: %v", v)
		}
		if v.Video != nil && v.Video.Error != nil {
			t.Fatalf("video element error: %v", v)
		}
		return v.SG.State == "playing", fmt.Sprintf("state %q", v.SG.State)
	}
}

// advancedCond holds once the video has played past t seconds without an error.
func advancedCond(t testing.TB, past float64) func(pageView) (bool, string) {
	return func(v pageView) (bool, string) {
		if v.Video == nil {
			return false, "no video element"
		}
		if v.Video.Error != nil {
			t.Fatalf("video element error: %v", v)
		}
		return v.Video.CurrentTime > past, fmt.Sprintf("currentTime %.2f, want > %.2f", v.Video.CurrentTime, past)
	}
}

// checkPlayingView checks what every playing page must show.
func checkPlayingView(t testing.TB, v pageView, m *mediaTorrent, wantMode string) {
	t.Helper()
	if v.SG.InfoHash != m.InfoHash {
		t.Errorf("window.swarmgate.infohash = %q, want %q", v.SG.InfoHash, m.InfoHash)
	}
	if wantMode != "" && v.SG.Mode != wantMode {
		t.Errorf("window.swarmgate.mode = %q, want %q (view: %v)", v.SG.Mode, wantMode, v)
	}
	if v.Video == nil || v.Video.Error != nil {
		t.Errorf("video element missing or in error: %v", v)
	} else if !v.Video.Controls {
		// The quick start's video starts without them; the page's loader adds them once it plays.
		t.Errorf("the playing video has no controls")
	}
}

// 1. A file only a native TCP peer has plays in Chromium from the gateway's watch page, through
// webtorrent (127.0.0.1 is a secure context, so the page must not need its /stream fallback).
// Run over an H.264/AAC MP4 and a VP9/Opus WebM.
func TestBrowserPlaysFromNativeSwarm(t *testing.T) {
	for _, name := range []string{"test-h264.mp4", "test-vp9.webm"} {
		t.Run(name, func(t *testing.T) {
			m := seedMediaThroughGateway(t, name, nil)
			b := startBrowser(t, browserOptions{name: "viewer"})
			start := time.Now()
			b.navigate(m.WatchURL())
			v := b.waitView(45*time.Second, nil, "page plays", playingCond(t))
			t.Logf("playing %v after navigation: %v", time.Since(start).Round(time.Millisecond), v)
			checkPlayingView(t, v, m, "webtorrent")
			var statsShown bool
			if err := b.eval(0, `!document.getElementById("stats").hidden`, &statsShown); err != nil || !statsShown {
				t.Errorf("the stats panel is hidden on a playing page (%v)", err)
			}
			v = b.waitView(30*time.Second, nil, "video passes 3 s", advancedCond(t, 3))
			t.Logf("past 3 s %v after navigation: %v", time.Since(start).Round(time.Millisecond), v)
			if v.SG == nil || v.SG.State != "playing" {
				t.Errorf("state after 3 s of video: %v", v)
			}
		})
	}
}

// The quick start's watch page shows the video's first frame before its controls and the
// player's modules (their start held up the first frame: docs/bench.md); a browser that says it
// will not autoplay gets the controls, and the player, at once.
func TestQuickStartControlsAfterFirstFrame(t *testing.T) {
	m := seedMediaThroughGateway(t, "test-h264.mp4", nil)
	// What the page had when its parsing ended.
	const atParsed = `document.addEventListener("DOMContentLoaded", () => {
	  const v = document.getElementById("player");
	  window.__atParsed = {src: v.getAttribute("src") || "", controls: v.controls, player: !!window.swarmgate};
	})`
	for _, c := range []struct {
		name    string
		refuses bool // the browser says it will not autoplay
	}{{"autoplays", false}, {"refuses-autoplay", true}} {
		t.Run(c.name, func(t *testing.T) {
			scripts := []string{atParsed}
			if c.refuses {
				scripts = append(scripts, `navigator.getAutoplayPolicy = () => "disallowed"`)
			}
			b := startBrowser(t, browserOptions{name: c.name, initScripts: scripts})
			b.navigate(m.WatchURL())
			v := b.waitView(45*time.Second, nil, "page plays", playingCond(t))
			checkPlayingView(t, v, m, "webtorrent")
			var at struct {
				Src              string
				Controls, Player bool
			}
			if err := b.eval(0, `window.__atParsed`, &at); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(at.Src, "/stream/") {
				t.Fatalf("the page did not start on the gateway's stream (src %q): no quick start to test", at.Src)
			}
			if at.Controls != c.refuses {
				t.Errorf("controls when the page was parsed: %v, want %v", at.Controls, c.refuses)
			}
			if !c.refuses && at.Player {
				t.Errorf("the player ran before the video played")
			}
		})
	}
	// JavaScript off (README: the page plays without it, without controls, and links the stream):
	// the video plays, and the page's <noscript> links its stream.
	t.Run("no-javascript", func(t *testing.T) {
		b := startBrowser(t, browserOptions{name: "no-js", noScript: true})
		b.navigate(m.WatchURL())
		v := b.waitView(45*time.Second, nil, "the video plays past 1 s without scripts", advancedCond(t, 1))
		if v.SG != nil {
			t.Fatalf("the page's scripts ran: %v", v)
		}
		var link string
		if err := b.eval(0, `document.querySelector("noscript a")?.getAttribute("href") || ""`, &link); err != nil || !strings.Contains(link, "/stream/") {
			t.Errorf("the page links %q (%v), want the file's stream", link, err)
		}
	})
	// The player's module does not load: the page says so, and the video plays on, with controls.
	t.Run("player-fails-to-load", func(t *testing.T) {
		b := startBrowser(t, browserOptions{name: "no-player", blockURLs: []string{"*://*:*/static/watch.js"}})
		b.navigate(m.WatchURL())
		v := b.waitView(45*time.Second, nil, "the video plays past 1 s, the page saying the player did not load", func(v pageView) (bool, string) {
			ok, reason := advancedCond(t, 1)(v)
			return ok && strings.Contains(v.Message, "The player did not load"), fmt.Sprintf("%s; message %q", reason, v.Message)
		})
		if !v.Video.Controls {
			t.Errorf("the video has no controls")
		}
	})
}

// 2. Seeking to 80 % of the video resumes playback within seconds: the page (and the gateway
// behind it) fetch the pieces at the new position first.
func TestBrowserSeek(t *testing.T) {
	m := seedMediaThroughGateway(t, "test-h264.mp4", nil)
	b := startBrowser(t, browserOptions{name: "viewer"})
	start := time.Now()
	b.navigate(m.WatchURL())
	b.waitView(45*time.Second, nil, "page plays", playingCond(t))
	t.Logf("playing %v after navigation", time.Since(start).Round(time.Millisecond))
	v := b.waitView(20*time.Second, nil, "video passes 1 s and knows its duration", func(v pageView) (bool, string) {
		ok, reason := advancedCond(t, 1)(v)
		return ok && v.Video.Duration > 0, reason + fmt.Sprintf(", duration %.2f", v.Video.Duration)
	})

	var target float64
	if err := b.eval(0, `(() => { const v = document.getElementById("player"); v.currentTime = 0.8 * v.duration; return v.currentTime; })()`, &target); err != nil {
		t.Fatalf("seek: %v", err)
	}
	seeked := time.Now()
	t.Logf("seek from %.2f to %.2f of %.2f s", v.Video.CurrentTime, target, v.Video.Duration)
	if target < 0.75*v.Video.Duration {
		t.Fatalf("seek did not take: currentTime %.2f", target)
	}
	v = b.waitView(10*time.Second, nil, "playback resumes after the seek", advancedCond(t, target+1))
	t.Logf("at %.2f s %v after the seek: %v", v.Video.CurrentTime, time.Since(seeked).Round(time.Millisecond), v)
	if v.SG == nil || v.SG.State == "error" {
		t.Errorf("state after seek: %v", v)
	}
}

// 3. Two viewers of one torrent, the gateway's upload capped: the second gets at least half of its
// bytes from the first, over WebRTC, through the gateway's tracker.
//
// The cap makes the gateway the slow source: the whole file takes ≈ 9 s from it, over WebRTC and
// webseed together. The second viewer starts once the first holds most (80 %) of the file. Started
// together, both would pull the same early pieces from the gateway at its capped rate and could
// only trade what one happened to get first: about half at best, a coin toss on the 0.5 bar. Started
// after the first has finished, the test would not see the two swarm while one is still fetching.
// At 80 % the first is the fast source for almost every piece the second asks for, while still
// fetching the tail itself, as a viewer who joins a little later would find it.
func TestBrowsersShareWithEachOther(t *testing.T) {
	needDefaultRoute(t)
	path := testMedia(t, "test-h264.mp4")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	rate := st.Size() / 9
	m := seedMediaThroughGateway(t, "test-h264.mp4", func(c *gateway.Config) { c.UploadRate = rate })
	t.Logf("file %d bytes, gateway upload capped at %d B/s", m.Length, rate)
	first := startBrowser(t, browserOptions{name: "first"})
	second := startBrowser(t, browserOptions{name: "second"})

	start := time.Now()
	first.navigate(m.WatchURL())
	first.waitView(45*time.Second, nil, "first viewer plays", playingCond(t))
	v1 := first.waitView(30*time.Second, nil, "first viewer holds 80 % of the file", func(v pageView) (bool, string) {
		got := v.SG.received()
		return got >= 0.8*float64(m.Length), fmt.Sprintf("received %.0f of %d bytes", got, m.Length)
	})
	t.Logf("first viewer at 80 %% after %v: %v", time.Since(start).Round(time.Millisecond), v1)

	start = time.Now()
	second.navigate(m.WatchURL())
	v2 := second.waitView(45*time.Second, nil, "second viewer plays", playingCond(t))
	checkPlayingView(t, v2, m, "webtorrent")
	v2 = second.waitView(45*time.Second, nil, "second viewer holds the whole file", func(v pageView) (bool, string) {
		got := v.SG.received()
		return got >= float64(m.Length), fmt.Sprintf("received %.0f of %d bytes", got, m.Length)
	})
	t.Logf("second viewer complete after %v: %v", time.Since(start).Round(time.Millisecond), v2)
	// The page lists its peers for diagnosis, the other browser among them, as many of each kind
	// as its peer counts say (the gateway's wire may be gone by now: a seed drops a seed).
	kinds := map[string]int{}
	for _, w := range v2.SG.Wires {
		kinds[w.Kind]++
	}
	if st := v2.SG.Stats; kinds["browsers"] != 1 || float64(kinds["browsers"]) != st.BrowserPeers || float64(kinds["gateway"]) != st.GatewayPeers {
		t.Errorf("second viewer's wires %+v: want the other browser, and as many of each kind as its peer counts (gateway %.0f, browsers %.0f)",
			v2.SG.Wires, st.GatewayPeers, st.BrowserPeers)
	}
	share := v2.SG.Stats.FromBrowsers / v2.SG.received()
	if share < 0.5 {
		t.Errorf("second viewer got %.0f %% of its bytes from browsers, want ≥ 50 %% (view: %v)", 100*share, v2)
	}
	v1, err = first.view(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first viewer at the end: %v", v1)
	if v1.SG == nil || v1.SG.Stats.Uploaded < 0.5*v2.SG.Stats.FromBrowsers {
		t.Errorf("first viewer's upload count does not match what the second got from browsers (%.0f): %v", v2.SG.Stats.FromBrowsers, v1)
	}
	checkFromGatewayMatchesToWebRTC(t, m, first, second)
	// Both pages played from webtorrent (a cap of about twice the bitrate has no room for the quick
	// start), their streams waited on pieces, and each told the gateway which (sg_needs).
	n := scrapeMetrics(t, m.Base)["swarmgate_upload_needs_messages_total"]
	t.Logf("sg_needs messages the gateway heard: %.0f", n)
	if n < 2 {
		t.Errorf("the gateway heard %.0f sg_needs messages from the two pages, want at least one each", n)
	}
}

// checkFromGatewayMatchesToWebRTC cross-checks the pages' fromGateway, the bytes they got from the
// gateway's peer, against the gateway's own count of what it sent to WebRTC peers
// (bytes.to_webrtc): the viewers are the gateway's only WebRTC peers, so the two must agree.
//
// Both count piece payload and nothing else: webtorrent adds each piece message's block as it
// arrives (the wire's download event), anacrolix each piece message's block as it queues it for
// the connection (BytesWrittenData); message headers, data-channel and DTLS overhead are in
// neither, so no allowance is made for them. The pages are read before the gateway, so a page can
// never be ahead of it: fromGateway > to_webrtc is a wrong count at once. The gateway can be
// ahead by what is in flight (queued in its writer or the data channel, or arrived since the
// page last refreshed its stats); once the viewers hold the file and request nothing more, that
// drains to zero, and the counts must meet exactly. (A wire to the gateway closed with blocks in
// flight would keep them apart; the viewers keep their wires open.)
func checkFromGatewayMatchesToWebRTC(t *testing.T, m *mediaTorrent, viewers ...*browser) {
	t.Helper()
	waitUntil(t, 60*time.Second, "the pages' bytes from the gateway meet the gateway's bytes.to_webrtc", func() (bool, string) {
		var pages float64
		for _, b := range viewers {
			v, err := b.view(0)
			if err != nil || v.SG == nil {
				return false, fmt.Sprintf("%s: no window.swarmgate (%v)", b.name, err)
			}
			pages += v.SG.Stats.FromGateway
		}
		sent := float64(getTorrent(t, m.Base, m.InfoHash).Bytes.ToWebRTC)
		if pages > sent {
			t.Fatalf("the pages got %.0f bytes from the gateway's peer, more than the %.0f its bytes.to_webrtc says it sent", pages, sent)
		}
		if pages == 0 {
			t.Fatalf("the pages got no bytes from the gateway's peer: nothing to cross-check")
		}
		return pages == sent, fmt.Sprintf("pages %.0f, gateway %.0f (%.0f in flight or miscounted)", pages, sent, sent-pages)
	})
}

// 5. A browser without WebRTC still plays: webtorrent then gets every piece from the gateway's
// webseed.
func TestBrowserWithoutWebRTCUsesWebseed(t *testing.T) {
	m := seedMediaThroughGateway(t, "test-h264.mp4", nil)
	b := startBrowser(t, browserOptions{name: "no-webrtc", noWebRTC: true})
	var hasRTC bool
	b.navigate(m.WatchURL())
	if err := b.eval(0, `typeof window.RTCPeerConnection !== "undefined"`, &hasRTC); err != nil || hasRTC {
		t.Fatalf("RTCPeerConnection still there (%v): the test's init script did not run", err)
	}
	v := b.waitView(45*time.Second, nil, "page plays", playingCond(t))
	checkPlayingView(t, v, m, "webtorrent")
	v = b.waitView(30*time.Second, nil, "video passes 2 s with bytes from the webseed", func(v pageView) (bool, string) {
		ok, reason := advancedCond(t, 2)(v)
		return ok && v.SG.Stats.FromWebseed > 0, fmt.Sprintf("%s, fromWebseed %.0f", reason, v.SG.Stats.FromWebseed)
	})
	t.Logf("%v", v)
	if st := v.SG.Stats; st.FromGateway != 0 || st.FromBrowsers != 0 || st.GatewayPeers != 0 {
		t.Errorf("a page without WebRTC has WebRTC peers or bytes: %v", v)
	}
}

// 6. A browser without service workers (as an insecure context looks to the page) plays the
// gateway's /stream, and says why.
func TestBrowserWithoutServiceWorkerPlaysStream(t *testing.T) {
	m := seedMediaThroughGateway(t, "test-h264.mp4", nil)
	noWorkerJS := `delete Navigator.prototype.serviceWorker`
	b := startBrowser(t, browserOptions{name: "no-worker", initScripts: []string{noWorkerJS}})
	b.navigate(m.WatchURL())
	v := b.waitView(45*time.Second, nil, "video passes 2 s", advancedCond(t, 2))
	t.Logf("%v", v)
	checkPlayingView(t, v, m, "stream")
	if want := "No service worker in this browser: playing from the gateway's stream"; !strings.Contains(v.SG.Message, want) {
		t.Errorf("message %q, want it to say %q", v.SG.Message, want)
	}
	if v.Video == nil || !strings.Contains(v.Video.Src, "/stream/"+m.InfoHash+"/") {
		t.Errorf("the video does not play the gateway's stream: %v", v)
	}
}
