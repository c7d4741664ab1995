package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestLiveEmbed: a page on another origin embeds a live stream through embed.js's
// <swarm-player live="…">; in real Chromium the framed /live/{stream}/embed plays near the live
// edge (window.swarmgate inside the frame: playing, currentTime advancing, bytes from the
// gateway), and the element's .state, posted by the frame, tells the host page the same.
func TestLiveEmbed(t *testing.T) {
	ls := startLive(t, liveOptions{seconds: 90})
	base, id := ls.base, ls.id
	host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>host: live element</title>
<h1>A page on another origin</h1>
<script src="%s/embed.js"></script>
<swarm-player id="p" live="%s" latency="2"></swarm-player>
<script>
window.heard = null
document.getElementById("p").addEventListener("swarmgate", ev => { window.heard = ev.detail })
</script>`, base, id)
	}))
	t.Cleanup(host.Close)

	b := startBrowser(t, browserOptions{name: "host"})
	b.navigate(host.URL + "/")

	frame := func(what string, cond func(liveState) bool, within time.Duration) liveState {
		t.Helper()
		var last liveState
		waitUntil(t, within, "embedded live player: "+what, func() (bool, string) {
			ctx := b.frameContext(base)
			if ctx == 0 {
				return false, "no frame of " + base + " yet"
			}
			var s liveState
			if err := b.eval(ctx, liveStateJS, &s); err != nil {
				return false, "read failed: " + err.Error()
			}
			last = s
			return cond(s), "last: " + s.String()
		})
		return last
	}
	s := frame("playing", livePlaying, 45*time.Second)
	if s.SG.Mode != "live" || s.SG.Stream != id.String() {
		t.Errorf("framed window.swarmgate mode %q stream %q, want live and %s", s.SG.Mode, s.SG.Stream, id)
	}
	from := s.CurrentTime
	s = frame("currentTime advancing by 2 s", func(s liveState) bool {
		return s.CurrentTime > from+2 && s.SG.Stats.FromGateway > 0
	}, 20*time.Second)
	t.Logf("framed player: %v", s)

	// The frame's URL is the live embed page with the element's latency.
	var src string
	if err := b.eval(0, `document.getElementById("p").shadowRoot.querySelector("iframe").src`, &src); err != nil {
		t.Fatal(err)
	}
	if want := base + "/live/" + id.String() + "/embed?latency=2"; src != want {
		t.Errorf("iframe src %q, want %q", src, want)
	}

	// The host page hears the framed state through the element.
	var heard struct {
		Heard *struct {
			State, Mode, Stream string
		}
		State *struct{ State string }
	}
	waitUntil(t, 10*time.Second, "the host page hearing the frame's playing state", func() (bool, string) {
		if err := b.eval(0, `({Heard: window.heard, State: document.getElementById("p").state || null})`, &heard); err != nil {
			return false, err.Error()
		}
		return heard.Heard != nil && heard.Heard.State == "playing" && heard.State != nil && heard.State.State == "playing",
			fmt.Sprintf("heard %+v, .state %+v", heard.Heard, heard.State)
	})
	if heard.Heard.Mode != "live" || heard.Heard.Stream != id.String() {
		t.Errorf("host heard mode %q stream %q, want live and %s", heard.Heard.Mode, heard.Heard.Stream, id)
	}
}
