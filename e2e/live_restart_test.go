package e2e

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/gateway"
	"github.com/swarmgate/swarmgate/live"
)

// mediaPlaylist is what a test reads of a live playlist: its media sequence number and the seq of
// each segment listed (gaps included: their URIs are <seq>.m4s too), and the tags that a restart
// must not bring.
type mediaPlaylist struct {
	mediaSeq uint64
	seqs     []uint64
	gaps     int
	discs    int
	text     string
}

func getPlaylist(t testing.TB, base string, id live.StreamID) mediaPlaylist {
	t.Helper()
	res, err := http.Get(base + "/live/" + id.String() + "/index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("playlist: %s %v\n%s", res.Status, err, b)
	}
	p := mediaPlaylist{text: string(b)}
	for _, line := range strings.Split(p.text, "\n") {
		switch {
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			p.mediaSeq, _ = strconv.ParseUint(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"), 10, 64)
		case line == "#EXT-X-GAP":
			p.gaps++
		case line == "#EXT-X-DISCONTINUITY":
			p.discs++
		case strings.HasSuffix(line, ".m4s"):
			seq, err := strconv.ParseUint(strings.TrimSuffix(line, ".m4s"), 10, 64)
			if err != nil {
				t.Fatalf("playlist line %q", line)
			}
			p.seqs = append(p.seqs, seq)
		}
	}
	return p
}

// TestLiveRestartDuringBroadcast: ffmpeg → live.Broadcast → a gateway keeping its data in a
// folder, Chromium playing the stream; the gateway is shut down and, 3 s later, started again on
// the same address and folder while the broadcast goes on. The restarted gateway lists the same segments
// under the same media sequence numbers, the broadcaster's next segments continue them (no gap,
// no discontinuity, no upload refused for want of its init segment), and the viewer's page plays
// on through the restart without being reloaded.
func TestLiveRestartDuringBroadcast(t *testing.T) {
	dataDir := t.TempDir()
	ls := startLive(t, liveOptions{seconds: 120, gateway: func(c *gateway.Config) { c.DataDir = dataDir }})
	b := startBrowser(t, browserOptions{name: "viewer"})
	b.watchLive(ls.page)
	waitUntil(t, 30*time.Second, "6 media segments on the gateway", func() (bool, string) {
		st, err := getLiveStatus(ls.base, ls.id)
		if err != nil {
			return false, err.Error()
		}
		return st.Window.Media >= 6, fmt.Sprintf("%d media segments", st.Window.Media)
	})
	// A marker in the page: a reload of the page would lose it.
	if err := b.eval(0, `window.beforeRestart = true`, nil); err != nil {
		t.Fatal(err)
	}

	before := getPlaylist(t, ls.base, ls.id)
	addr := ls.server.Gateway.Addr().String()
	down := time.Now()
	if err := ls.server.Close(); err != nil {
		t.Fatalf("shutting the gateway down: %v", err)
	}
	s := b.waitLive(10*time.Second, "the page's state before the restart", func(liveState) bool { return true })
	playedAtRestart := s.CurrentTime
	// Down for a few segments, as a real restart may be: the broadcaster's uploads and the
	// player's requests fail meanwhile, and are retried.
	time.Sleep(3 * time.Second)
	second := startGateway(t, func(c *gateway.Config) {
		c.DataDir, c.HTTPAddr, c.IngestToken = dataDir, addr, liveIngestToken
	})
	t.Logf("the gateway was down for %v", time.Since(down).Round(time.Millisecond))

	after := getPlaylist(t, second.URL, ls.id)
	if after.mediaSeq != before.mediaSeq || len(after.seqs) < len(before.seqs) || !slices.Equal(after.seqs[:len(before.seqs)], before.seqs) {
		t.Errorf("playlist after the restart lists %v from media sequence %d; before it listed %v from %d",
			after.seqs, after.mediaSeq, before.seqs, before.mediaSeq)
	}
	edge := before.seqs[len(before.seqs)-1]
	waitUntil(t, 30*time.Second, "5 more segments from the broadcaster", func() (bool, string) {
		st, err := getLiveStatus(second.URL, ls.id)
		if err != nil {
			return false, err.Error()
		}
		return st.EdgeSeq != nil && *st.EdgeSeq >= edge+5, fmt.Sprintf("edge %v", st.EdgeSeq)
	})
	cont := getPlaylist(t, second.URL, ls.id)
	if cont.gaps != 0 || cont.discs != 0 || cont.mediaSeq != before.mediaSeq || !slices.IsSorted(cont.seqs) ||
		cont.seqs[len(cont.seqs)-1]-cont.seqs[0] != uint64(len(cont.seqs)-1) {
		t.Errorf("playlist after the broadcaster went on, want the one before continued without gap or discontinuity:\n%s", cont.text)
	}
	st, err := getLiveStatus(second.URL, ls.id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != live.StateLive || st.Rejected != 0 {
		t.Errorf("stream after the restart: state %s, %d uploads refused %v", st.State, st.Rejected, st.Rejections)
	}

	s = b.waitLive(45*time.Second, "the viewer playing 5 s past the restart", func(s liveState) bool {
		return s.SG.State == "playing" && s.CurrentTime > playedAtRestart+5
	})
	var kept bool
	if err := b.eval(0, `window.beforeRestart === true`, &kept); err != nil || !kept {
		t.Errorf("the page was reloaded (or could not be read: %v)", err)
	}
	t.Logf("viewer: %v", s)
}
