package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/gateway"
	"github.com/swarmgate/swarmgate/internal/gatewaytest"
	"github.com/swarmgate/swarmgate/live"
)

const liveIngestToken = "e2e-live-ingest-token"

// liveState is what a test reads of the live page: its window.swarmgate and the video element.
type liveState struct {
	SG *struct {
		State   string `json:"state"`
		Mode    string `json:"mode"`
		Message string `json:"message"`
		Stream  string `json:"stream"`
		Stats   struct {
			FromGateway  float64 `json:"fromGateway"`
			FromBrowsers float64 `json:"fromBrowsers"`
			Uploaded     float64 `json:"uploaded"`
			Peers        float64 `json:"peers"`
			BehindLive   float64 `json:"behindLive"`
			Verified     float64 `json:"verified"`
			Rejected     float64 `json:"rejected"`
		} `json:"stats"`
	} `json:"sg"`
	CurrentTime float64 `json:"currentTime"`
	Paused      bool    `json:"paused"`
	Ended       bool    `json:"ended"`
	Message     string  `json:"message"`
}

func (s liveState) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}

const liveStateJS = `(() => {
  const v = document.getElementById("player");
  const m = document.getElementById("message");
  return {
    sg: window.swarmgate ? JSON.parse(JSON.stringify(window.swarmgate)) : null,
    currentTime: v ? v.currentTime : -1, paused: v ? v.paused : true, ended: v ? v.ended : false,
    message: m ? m.textContent.trim() : "",
  };
})()`

// waitLive polls the page's live state every 200 ms until cond holds; the test fails after within.
func (b *browser) waitLive(within time.Duration, what string, cond func(liveState) bool) liveState {
	b.t.Helper()
	var last liveState
	waitUntil(b.t, within, b.name+": "+what, func() (bool, string) {
		var s liveState
		if err := b.eval(0, liveStateJS, &s); err != nil {
			return false, "read failed: " + err.Error()
		}
		last = s
		return cond(s), "last: " + s.String()
	})
	return last
}

// livePlaying is a live page playing: the player started and its video advanced.
func livePlaying(s liveState) bool {
	return s.SG != nil && s.SG.State == "playing" && s.CurrentTime > 0
}

// watchLive opens a live page (url with its query) in b and waits until it plays.
func (b *browser) watchLive(url string) liveState {
	b.t.Helper()
	b.navigate(url)
	return b.waitLive(45*time.Second, "playing "+url, livePlaying)
}

// liveOptions configure startLive. The zero value is the tests' broadcast: ffmpeg's testsrc2 at
// 320×180 with a 440 Hz tone, 1 s segments, the stream kept open when the broadcast stops.
type liveOptions struct {
	// seconds is how long ffmpeg's source runs; the broadcast is cancelled at the test's end anyway.
	seconds int
	// end makes the broadcast end the stream (a signed end) when it stops, as "swarmgate
	// broadcast" does; otherwise the stream stays open and stalls, which some tests look at.
	end bool
	// gateway changes the gateway's config beyond the ingest token; nil for none.
	gateway func(*gateway.Config)
	// The benchmark's knobs: the picture size ("320x180"), segment seconds (1) and the
	// broadcaster's HTTP client (nil: live's default).
	size    string
	segment float64
	client  *http.Client
}

// liveStream is a real gateway that takes live streams, and one broadcast into it.
type liveStream struct {
	base   string              // the gateway's http:// URL
	server *gatewaytest.Server // the gateway
	id     live.StreamID
	page   string             // base + "/live/" + id, the watch page
	stop   context.CancelFunc // stops the broadcast before the test's end
}

// startLive starts a gateway that takes live streams (liveIngestToken), runs live.Broadcast of
// ffmpeg's lavfi test source into it (real ffmpeg, real HTTP uploads of signed segments) until the
// test ends, and waits until the gateway holds 3 media segments of the stream.
func startLive(t testing.TB, o liveOptions) liveStream {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		missingTool(t, "ffmpeg", "apt-get install ffmpeg")
	}
	if o.size == "" {
		o.size = "320x180"
	}
	if o.segment == 0 {
		o.segment = 1
	}
	server := startGateway(t, func(c *gateway.Config) {
		c.IngestToken = liveIngestToken
		if o.gateway != nil {
			o.gateway(c)
		}
	})
	base := server.URL
	priv, err := live.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	id := live.StreamIDOfKey(priv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(o.seconds+30)*time.Second)
	done := make(chan error, 1)
	go func() {
		cfg := live.DefaultBroadcastConfig()
		cfg.Gateway, cfg.Token, cfg.Key, cfg.KeepOpen = base, liveIngestToken, priv, !o.end
		cfg.SegmentSeconds = o.segment
		if o.client != nil {
			cfg.Client = o.client
		}
		cfg.InputArgs = []string{
			"-re", "-f", "lavfi", "-i", "testsrc2=size=" + o.size + ":rate=25",
			"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", strconv.Itoa(o.seconds),
		}
		_, err := live.Broadcast(ctx, cfg, testLogger(t))
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("broadcast: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("broadcast did not stop within 30 s of cancel")
		}
	})
	waitUntil(t, 60*time.Second, "3 media segments on the gateway", func() (bool, string) {
		st, err := getLiveStatus(base, id)
		if err != nil {
			return false, err.Error()
		}
		return st.Window.Media >= 3, fmt.Sprintf("%d media segments", st.Window.Media)
	})
	return liveStream{base: base, server: server, id: id, page: base + "/live/" + id.String(), stop: cancel}
}

// getLiveStatus reads the gateway's GET /api/live/{stream}.
func getLiveStatus(base string, id live.StreamID) (live.StreamStatus, error) {
	var st live.StreamStatus
	res, err := http.Get(base + "/api/live/" + id.String())
	if err != nil {
		return st, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return st, &httpStatusError{res.Status}
	}
	return st, json.NewDecoder(res.Body).Decode(&st)
}

type httpStatusError struct{ status string }

func (e *httpStatusError) Error() string { return e.status }

// TestLivePlaysInBrowser: ffmpeg's test source → live.Broadcast → a real gateway; Chromium opens
// /live/{stream}, plays near the live edge (currentTime advances, seconds behind live reported),
// the page's validateP2PSegment accepts a segment's real bytes and rejects altered ones, the page
// says when the broadcaster stops (stalled), and a stream the gateway does not have is reported
// as unknown.
func TestLivePlaysInBrowser(t *testing.T) {
	ls := startLive(t, liveOptions{seconds: 90})
	base, id := ls.base, ls.id
	b := startBrowser(t, browserOptions{name: "viewer"})

	s := b.watchLive(ls.page)
	if s.SG.Mode != "live" || s.SG.Stream != id.String() {
		t.Errorf("window.swarmgate mode %q stream %q, want live and %s", s.SG.Mode, s.SG.Stream, id)
	}
	from := s.CurrentTime
	s = b.waitLive(20*time.Second, "currentTime advancing by 3 s", func(s liveState) bool {
		return s.CurrentTime > from+3 && s.SG.Stats.BehindLive > 0
	})
	if bl := s.SG.Stats.BehindLive; bl < 0.5 || bl > 20 {
		t.Errorf("seconds behind live = %.1f, want between 0.5 and 20 (3 one-second segments behind the edge)", bl)
	}
	if s.SG.Stats.FromGateway == 0 {
		t.Errorf("no bytes counted from the gateway: %v", s)
	}

	// The page's check of a segment from a peer, called with a real segment and altered bytes.
	var check struct {
		Good, Tampered, Short, Unknown bool
		Rejected                       float64
		Err                            string
	}
	js := `(async () => {
	  try {
	    const m = await (await fetch("/live/` + id.String() + `/manifest.json")).json();
	    const e = m.entries.filter(e => e.kind === "media").pop();
	    const url = location.origin + "/live/` + id.String() + `/" + e.seq + ".m4s";
	    const data = await (await fetch(url)).arrayBuffer();
	    const good = await swarmgateLive.validateP2PSegment(url, undefined, data.slice(0));
	    const bad = new Uint8Array(data.slice(0)); bad[bad.length >> 1] ^= 0x01;
	    const tampered = await swarmgateLive.validateP2PSegment(url, undefined, bad.buffer);
	    const short = await swarmgateLive.validateP2PSegment(url, undefined, data.slice(1));
	    const unknown = await swarmgateLive.validateP2PSegment(location.origin + "/live/` + id.String() + `/1.m4s", undefined, data.slice(0));
	    return {Good: good, Tampered: tampered, Short: short, Unknown: unknown, Rejected: window.swarmgate.stats.rejected};
	  } catch (err) { return {Err: String(err)}; }
	})()`
	before := s.SG.Stats.Rejected
	if err := b.eval(0, js, &check); err != nil || check.Err != "" {
		t.Fatalf("validateP2PSegment check: %v %s", err, check.Err)
	}
	if !check.Good || check.Tampered || check.Short || check.Unknown || check.Rejected < before+3 {
		t.Errorf("validateP2PSegment: real bytes %v (want true), one bit flipped %v, one byte short %v, a seq not in the manifest %v (want false each); rejected %v → %v (want +3)",
			check.Good, check.Tampered, check.Short, check.Unknown, before, check.Rejected)
	}

	// A signed entry with an altered field does not verify.
	var sig struct{ Good, Altered bool }
	if err := b.eval(0, `(async () => {
	  const m = await (await fetch("/live/`+id.String()+`/manifest.json")).json();
	  const e = m.entries[m.entries.length - 1];
	  return {Good: await swarmgateLive.verifyEntry(e), Altered: await swarmgateLive.verifyEntry({...e, size: e.size + 1})};
	})()`, &sig); err != nil || !sig.Good || sig.Altered {
		t.Errorf("verifyEntry: %v, real entry %v (want true), altered size %v (want false)", err, sig.Good, sig.Altered)
	}

	// The broadcaster stops: after 3 target durations without a segment the page says so.
	ls.stop()
	b.waitLive(20*time.Second, "a stalled-stream message", func(s liveState) bool {
		return s.SG.State == "stalled" && strings.Contains(s.Message, "Stream stalled")
	})

	// A stream this gateway does not have.
	other, err := live.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b.navigate(base + "/live/" + live.StreamIDOfKey(other).String())
	b.waitLive(15*time.Second, "an unknown-stream message", func(s liveState) bool {
		return s.SG != nil && s.SG.State == "error" && len(s.Message) > 0 && strings.Contains(s.Message, "Unknown stream")
	})
}

// TestLiveEndInBrowser: a broadcast that stops ends the stream with its signed end; the page
// says the broadcast has ended and plays what it has to the last segment.
func TestLiveEndInBrowser(t *testing.T) {
	ls := startLive(t, liveOptions{seconds: 8, end: true})
	b := startBrowser(t, browserOptions{name: "viewer"})

	b.watchLive(ls.page)
	s := b.waitLive(45*time.Second, "the end of the broadcast", func(s liveState) bool {
		return s.SG.State == "ended" && s.Ended
	})
	if !strings.Contains(s.Message, "The broadcast has ended.") {
		t.Errorf("message %q, want it to say the broadcast has ended", s.Message)
	}
	if s.CurrentTime < 5 {
		t.Errorf("played to %.1f s of an 8 s broadcast, want the segments up to its end", s.CurrentTime)
	}
}

// TestLiveP2PBetweenBrowsers: two Chromium viewers of one live stream; the second, playing
// further behind the edge, gets segments from the first over WebRTC (signalled through the
// gateway's /announce), each checked against the signed manifest.
func TestLiveP2PBetweenBrowsers(t *testing.T) {
	needDefaultRoute(t)
	ls := startLive(t, liveOptions{seconds: 120})
	a := startBrowser(t, browserOptions{name: "viewer-a"})
	b := startBrowser(t, browserOptions{name: "viewer-b"})

	a.watchLive(ls.page + "?latency=2")
	b.watchLive(ls.page + "?latency=8")
	s := b.waitLive(60*time.Second, "b getting bytes from a", func(s liveState) bool {
		return s.SG.Stats.FromBrowsers > 0 && s.SG.Stats.Peers > 0
	})
	s = b.waitLive(10*time.Second, "b counting a verified segment from a", func(s liveState) bool { return s.SG.Stats.Verified > 0 })
	if s.SG.Stats.Rejected != 0 {
		t.Errorf("b rejected %v segments from a, an honest peer", s.SG.Stats.Rejected)
	}
	from := s.CurrentTime
	b.waitLive(20*time.Second, "b still playing", func(s liveState) bool { return s.CurrentTime > from+2 })
	t.Logf("viewer b: %v", s)
}
