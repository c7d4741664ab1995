package gateway

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/live"
)

// streamDir is where a gateway with data folder dataDir keeps a stream's window.
func streamDir(dataDir string, id live.StreamID) string {
	return filepath.Join(dataDir, liveDir, id.String())
}

// segmentBytesOnDisk is the size of the segment files (not the records) in a stream's folder,
// and their names.
func segmentBytesOnDisk(t testing.TB, dir string) (int64, []string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
		names = append(names, e.Name())
	}
	return size, names
}

func (f *liveFeed) get(r *running, name string) response {
	f.t.Helper()
	return r.do(f.t, http.MethodGet, "/live/"+f.id.String()+"/"+name, nil, nil)
}

// end ends the stream after its last media segment, as the broadcaster does when it stops.
func (f *liveFeed) end() {
	f.t.Helper()
	js, err := json.Marshal(live.SignEnd(f.priv, f.next-1, time.Now()))
	if err != nil {
		f.t.Fatal(err)
	}
	h := map[string]string{"Authorization": "Bearer " + testIngestToken}
	if res := f.origin.do(f.t, http.MethodPut, "/live/"+f.id.String()+"/end", h, bytes.NewReader(js)); res.status != http.StatusCreated {
		f.t.Fatalf("end: %d %s", res.status, res.body)
	}
}

// TestLiveWindowSurvivesRestart: a gateway restarted on the same data folder during a broadcast
// serves the same playlist, manifest and segments; the broadcaster's next segments are taken
// without the init segment again and continue the playlist (media sequence numbers unchanged);
// a relay that joins after the restart gets the kept segments over BitTorrent (they are seeded
// again). A stream its broadcaster ended is still ended after the next restart, its window still
// watchable.
func TestLiveWindowSurvivesRestart(t *testing.T) {
	dataDir := t.TempDir()
	cfg := func(c *Config) { c.DataDir, c.IngestToken = dataDir, testIngestToken }
	first := startGateway(t, cfg)
	feed := newLiveFeed(t, first)
	feed.push(true, 5) // init 0, media 0–4
	before := map[string]string{}
	for _, name := range []string{"index.m3u8", "manifest.json"} {
		before[name] = string(feed.get(first, name).body)
	}
	first.stop()
	_, names := segmentBytesOnDisk(t, streamDir(dataDir, feed.id))
	if want := []string{"0.m4s", "1.m4s", "2.m4s", "3.m4s", "4.m4s", "init-0.mp4"}; !slices.Equal(names, want) {
		t.Fatalf("segments on disk %v, want %v", names, want)
	}

	second := startGateway(t, cfg)
	for name, want := range before {
		if res := feed.get(second, name); res.status != http.StatusOK || string(res.body) != want {
			t.Errorf("%s after the restart: %d\n%s\nbefore:\n%s", name, res.status, res.body, want)
		}
	}
	for name, data := range feed.data {
		if res := feed.get(second, name); res.status != http.StatusOK || !bytes.Equal(res.body, data) {
			t.Errorf("%s after the restart: %d, %d bytes; want the %d uploaded", name, res.status, len(res.body), len(data))
		}
	}
	if st := liveStatus(t, second, feed.id); st.NextSeq != 5 || st.Window.FirstSeq == nil || *st.Window.FirstSeq != 0 || st.Window.Media != 5 {
		t.Errorf("state after the restart: %+v", st)
	}

	// The broadcaster goes on: media 5–7, no init again (push fails the test on any refusal).
	feed.origin = second
	feed.push(false, 3)
	pl := string(feed.get(second, "index.m3u8").body)
	if !strings.HasPrefix(pl, before["index.m3u8"]) || !strings.HasSuffix(pl, "\n7.m4s\n") || strings.Contains(pl, "DISCONTINUITY") {
		t.Errorf("playlist after the next segments, want the one before the restart continued:\n%s", pl)
	}
	// A relay joining now fetches the kept segments over BitTorrent from the restarted gateway.
	servedHTTP := liveStatus(t, second, feed.id).BytesOutHTTP // the test's own reads
	relay := startGateway(t, relayConfig(feed.url(second)))
	waitEdge(t, relay, feed.id, 7, "a relay of the restarted gateway to reach segment 7")
	for _, name := range []string{"init-0.mp4", "3.m4s", "4.m4s", "7.m4s"} {
		if res := feed.get(relay, name); !bytes.Equal(res.body, feed.data[name]) {
			t.Errorf("relay %s: %d, %d bytes", name, res.status, len(res.body))
		}
	}
	if st := liveStatus(t, second, feed.id); st.BytesOutHTTP != servedHTTP {
		t.Errorf("the restarted gateway served %d segment bytes over HTTP to the relay; it must have used BitTorrent", st.BytesOutHTTP-servedHTTP)
	}

	// Ended, then restarted: still ended, and the window still plays to its end.
	feed.end()
	second.stop()
	third := startGateway(t, cfg)
	if st := liveStatus(t, third, feed.id); st.State != live.StateEnded || st.Window.Media != 8 {
		t.Errorf("ended stream after the restart: %+v", st)
	}
	if pl := string(feed.get(third, "index.m3u8").body); !strings.HasSuffix(pl, "\n7.m4s\n#EXT-X-ENDLIST\n") || !strings.Contains(pl, "\n0.m4s\n") {
		t.Errorf("ended stream's playlist after the restart:\n%s", pl)
	}
}

// TestLiveRestartDropsTamperedSegments: segment files changed on disk while the gateway was down
// (bytes altered, a record cut short) are deleted at the restart with a warning each, and never
// served: the playlist shows them as gaps, the rest plays.
func TestLiveRestartDropsTamperedSegments(t *testing.T) {
	dataDir := t.TempDir()
	cfg := func(c *Config) { c.DataDir, c.IngestToken = dataDir, testIngestToken }
	first := startGateway(t, cfg)
	feed := newLiveFeed(t, first)
	feed.push(true, 5)
	first.stop()
	dir := streamDir(dataDir, feed.id)
	seg2 := filepath.Join(dir, "2.m4s")
	b, err := os.ReadFile(seg2)
	if err != nil {
		t.Fatal(err)
	}
	b[1000] ^= 0x40
	if err := os.WriteFile(seg2, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rec3 := filepath.Join(dir, "3.m4s.json")
	if err := os.Truncate(rec3, 100); err != nil {
		t.Fatal(err)
	}

	logs, log := newLogBuffer(slog.LevelWarn)
	second := startGatewayLog(t, cfg, log)
	for _, name := range []string{"2.m4s", "3.m4s"} {
		wantJSONError(t, "tampered "+name, feed.get(second, name), http.StatusNotFound)
		warned := false
		for _, r := range logs.records(t) {
			warned = warned || strings.Contains(r.line, "does not verify") && r.str("file") == filepath.Join(dir, name+".json")
		}
		if !warned {
			t.Errorf("no warning about %s; logged:\n%s", name, logs.buf.String())
		}
	}
	for _, name := range []string{"init-0.mp4", "0.m4s", "1.m4s", "4.m4s"} {
		if res := feed.get(second, name); !bytes.Equal(res.body, feed.data[name]) {
			t.Errorf("%s: %d, %d bytes", name, res.status, len(res.body))
		}
	}
	if _, names := segmentBytesOnDisk(t, dir); slices.Contains(names, "2.m4s") || slices.Contains(names, "3.m4s") {
		t.Errorf("tampered files still on disk: %v", names)
	}
	pl := string(feed.get(second, "index.m3u8").body)
	if !strings.Contains(pl, "#EXT-X-MEDIA-SEQUENCE:0\n") || strings.Count(pl, "#EXT-X-GAP") != 2 || !strings.HasSuffix(pl, "\n4.m4s\n") {
		t.Errorf("playlist, want gaps for 2 and 3:\n%s", pl)
	}
}

// TestLiveMaxBytesOnDisk: --live-max-bytes bounds the segment bytes on disk as in memory, the
// oldest leaving both; a restart keeps the same window, and one with a shorter --live-window
// drops what is older than it (here all: the stream is gone, its folder too).
func TestLiveMaxBytesOnDisk(t *testing.T) {
	dataDir := t.TempDir()
	cfg := func(c *Config) { c.DataDir, c.IngestToken, c.LiveMaxBytes = dataDir, testIngestToken, 1<<20 }
	first := startGateway(t, cfg)
	feed := newLiveFeed(t, first)
	dir := streamDir(dataDir, feed.id)
	feed.push(true, 0)
	for seq := range 6 { // 300 KB each: at most 3 fit in 1 MiB
		feed.push(false, 1)
		size, names := segmentBytesOnDisk(t, dir)
		st := liveStatus(t, first, feed.id)
		if size > 1<<20 || size != st.Window.Bytes || len(names) != min(seq+1, 3)+1 {
			t.Errorf("after media %d: %d bytes on disk in %v, %d in memory; the bound is %d", seq, size, names, st.Window.Bytes, 1<<20)
		}
	}
	pl := string(feed.get(first, "index.m3u8").body)
	first.stop()
	if _, names := segmentBytesOnDisk(t, dir); !slices.Equal(names, []string{"3.m4s", "4.m4s", "5.m4s", "init-0.mp4"}) {
		t.Errorf("on disk %v, want media 3–5 and their init", names)
	}
	second := startGateway(t, cfg)
	if got := string(feed.get(second, "index.m3u8").body); got != pl || !strings.Contains(got, "#EXT-X-MEDIA-SEQUENCE:3\n") {
		t.Errorf("playlist after the restart:\n%s\nbefore:\n%s", got, pl)
	}
	second.stop()
	third := startGateway(t, func(c *Config) { cfg(c); c.LiveWindow = 30 * time.Second })
	wantJSONError(t, "a stream older than the window", third.do(t, http.MethodGet, "/api/live/"+feed.id.String(), nil, nil), http.StatusNotFound)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the stream's folder is still there: %v", err)
	}
}

// TestLiveRelaySurvivesRestart: a relay restarted on the same data folder re-verifies its kept
// window with the stream's key (a segment altered on its disk is dropped: a gap), then goes on
// after the newest segment it kept, fetching all that came while it was down and nothing else;
// its window still starts where it did.
func TestLiveRelaySurvivesRestart(t *testing.T) {
	origin := startGateway(t, func(c *Config) { c.IngestToken = testIngestToken })
	feed := newLiveFeed(t, origin)
	feed.push(true, 8) // init 0, media 0–7
	dataDir := t.TempDir()
	cfg := func(c *Config) { relayConfig(feed.url(origin))(c); c.DataDir = dataDir }
	relay := startGateway(t, cfg)
	waitEdge(t, relay, feed.id, 7, "the relay to reach segment 7")
	relay.stop()
	// Media 8–15 while the relay is down: more than its backlog, so that joining anew would skip
	// some.
	feed.push(false, 8)
	seg5 := filepath.Join(streamDir(dataDir, feed.id), "5.m4s")
	b, err := os.ReadFile(seg5)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if err := os.WriteFile(seg5, b, 0o644); err != nil {
		t.Fatal(err)
	}

	again := startGateway(t, cfg)
	st := waitEdge(t, again, feed.id, 15, "the restarted relay to follow to 15")
	first := uint64(8 - live.DefaultRelayBacklog)
	if st.Window.FirstSeq == nil || *st.Window.FirstSeq != first || st.Relay == nil || st.Relay.Fetched != 8 || st.Gaps != 1 || st.Missing != 1 {
		t.Errorf("restarted relay: window from %v, %d gaps (%d missing), relay %+v; want from %d, one gap (media 5), 8 fetched (8–15)",
			st.Window.FirstSeq, st.Gaps, st.Missing, st.Relay, first)
	}
	wantJSONError(t, "the altered segment", feed.get(again, "5.m4s"), http.StatusNotFound)
	for seq := first; seq < 16; seq++ {
		name := live.SegmentName(live.KindMedia, seq)
		if res := feed.get(again, name); seq != 5 && !bytes.Equal(res.body, feed.data[name]) {
			t.Errorf("restarted relay %s: %d, %d bytes", name, res.status, len(res.body))
		}
	}
	if pl := string(feed.get(again, "index.m3u8").body); strings.Count(pl, "#EXT-X-GAP") != 1 || !strings.Contains(pl, "#EXT-X-MEDIA-SEQUENCE:3\n") {
		t.Errorf("restarted relay's playlist, want media 5 as a gap:\n%s", pl)
	}
}
