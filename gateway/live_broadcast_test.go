package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/live"
)

// testSource is a bounded lavfi test picture and tone, read in real time.
func testSource(seconds string) []string {
	return []string{
		"-re", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", seconds,
	}
}

// TestLiveBroadcastEndToEnd: ffmpeg's test source → live.Broadcast → a real gateway; the
// playlist lists the segments with their init and times, every segment served matches its
// signed manifest entry, ffprobe reads init + first segment, and a second broadcast with the
// same key goes on from the stream's next seq.
func TestLiveBroadcastEndToEnd(t *testing.T) {
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install ffmpeg)", tool)
		}
	}
	r := startGateway(t, func(c *Config) { c.IngestToken = testIngestToken })
	priv := mustKey(t)
	id := live.StreamIDOfKey(priv)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	cfg := live.DefaultBroadcastConfig()
	cfg.Gateway, cfg.Token, cfg.Key, cfg.InputArgs = r.base, testIngestToken, priv, testSource("4")
	cfg.Out, cfg.Client = &out, r.client
	st, err := live.Broadcast(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("broadcast: %v (%+v)", err, st)
	}
	if !strings.Contains(out.String(), id.String()) || !strings.Contains(out.String(), r.base+"/live/"+id.String()) {
		t.Errorf("broadcast printed %q, want the stream id and the watch URL", out.String())
	}
	if st.Refused != 0 || st.Failed != 0 || st.Uploaded < 4 || st.FirstSeq < uint64(time.Now().Add(-time.Hour).UnixMilli()) {
		t.Fatalf("broadcast stats %+v, want ≥ 4 uploaded (init + ≥ 3 media), none refused, a new stream numbered from the Unix time in ms", st)
	}

	pl := r.get(t, "/live/"+id.String()+"/index.m3u8", map[string]string{"Origin": "https://player.example.org"})
	text := string(pl.body)
	if acao := pl.header.Get("Access-Control-Allow-Origin"); acao != "*" {
		t.Errorf("playlist: Access-Control-Allow-Origin %q, want * like the rest of the GET API", acao)
	}
	if pl.status != 200 || !strings.HasPrefix(pl.header.Get("Content-Type"), "application/vnd.apple.mpegurl") ||
		!strings.Contains(pl.header.Get("Cache-Control"), "max-age=1") {
		t.Fatalf("playlist: %d %v\n%s", pl.status, pl.header, text)
	}
	if !st.Ended || !strings.HasSuffix(text, "#EXT-X-ENDLIST\n") {
		t.Errorf("broadcast ended %v; its playlist after the input's end:\n%s", st.Ended, text)
	}
	if strings.Count(text, "#EXTINF:") < 3 || strings.Count(text, "#EXT-X-PROGRAM-DATE-TIME:") < 3 ||
		!strings.Contains(text, fmt.Sprintf("#EXT-X-MAP:URI=%q", live.SegmentName(live.KindInit, st.FirstSeq))) ||
		!strings.Contains(text, fmt.Sprintf("#EXT-X-MEDIA-SEQUENCE:%d\n", st.FirstSeq)) {
		t.Fatalf("playlist lacks ≥ 3 segments with EXT-X-MAP and PROGRAM-DATE-TIME:\n%s", text)
	}

	m := fetchManifest(t, r, id)
	if len(m.Entries) != st.Uploaded {
		t.Errorf("manifest has %d entries, the broadcaster uploaded %d", len(m.Entries), st.Uploaded)
	}
	segs := map[string][]byte{}
	for _, e := range m.Entries {
		if err := live.Verify(id, e); err != nil {
			t.Errorf("manifest entry %s %d: %v", e.Kind, e.Seq, err)
		}
		name := live.SegmentName(e.Kind, e.Seq)
		res := r.get(t, "/live/"+id.String()+"/"+name, nil)
		if res.status != 200 {
			t.Fatalf("%s: %d %s", name, res.status, res.body)
		}
		if sha256.Sum256(res.body) != e.SHA256 || uint64(len(res.body)) != e.Size {
			t.Errorf("%s: %d bytes do not match the signed entry", name, len(res.body))
		}
		if cc := res.header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("%s: Cache-Control %q, want immutable", name, cc)
		}
		if e.Kind == live.KindMedia && !strings.Contains(text, "\n"+name+"\n") {
			t.Errorf("%s is in the manifest, not in the playlist", name)
		}
		segs[name] = res.body
	}

	probe := filepath.Join(t.TempDir(), "probe.mp4")
	if err := os.WriteFile(probe, append(append([]byte{}, segs[live.SegmentName(live.KindInit, st.FirstSeq)]...), segs[live.SegmentName(live.KindMedia, st.FirstSeq)]...), 0o644); err != nil {
		t.Fatal(err)
	}
	codecs, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", probe).CombinedOutput()
	if err != nil || !strings.Contains(string(codecs), "h264") || !strings.Contains(string(codecs), "aac") {
		t.Errorf("ffprobe of init + first segment: %v: %s", err, codecs)
	}

	// A second broadcast with the same key continues the stream after the first.
	next := m.Entries[len(m.Entries)-1].Seq + 1
	cfg.InputArgs, cfg.Out = testSource("2"), nil
	st2, err := live.Broadcast(ctx, cfg, testLogger(t))
	if err != nil || st2.FirstSeq != next || st2.Refused != 0 || st2.Uploaded < 2 {
		t.Fatalf("second broadcast: %v, stats %+v, want it to start at seq %d", err, st2, next)
	}
	m2 := fetchManifest(t, r, id)
	if err := m2.Verify(); err != nil || len(m2.Entries) != st.Uploaded+st2.Uploaded {
		t.Errorf("manifest after the second broadcast: %v, %d entries, want %d", err, len(m2.Entries), st.Uploaded+st2.Uploaded)
	}
	var status live.StreamStatus
	if res := r.get(t, "/api/live/"+id.String(), nil); json.Unmarshal(res.body, &status) != nil || status.BytesIn == 0 || status.BitrateBPS <= 0 || status.Window.Inits != 2 || status.State != live.StateEnded {
		t.Errorf("stream status: %s", res.body)
	}
}

func fetchManifest(t *testing.T, r *running, id live.StreamID) live.Manifest {
	t.Helper()
	res := r.get(t, "/live/"+id.String()+"/manifest.json", nil)
	var m live.Manifest
	if err := json.Unmarshal(res.body, &m); err != nil || res.status != 200 {
		t.Fatalf("manifest: %d %v %.300s", res.status, err, res.body)
	}
	if err := m.Verify(); err != nil || m.Stream != id {
		t.Fatalf("manifest: %v (stream %s)", err, m.Stream)
	}
	return m
}

// TestLiveBroadcastCancel: cancelling a broadcast stops ffmpeg and returns context.Canceled,
// with what was uploaded until then on the gateway.
func TestLiveBroadcastCancel(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (apt-get install ffmpeg)")
	}
	r := startGateway(t, func(c *Config) { c.IngestToken = testIngestToken })
	priv := mustKey(t)
	id := live.StreamIDOfKey(priv)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		st  live.BroadcastStats
		err error
	}
	done := make(chan result, 1)
	go func() {
		cfg := live.DefaultBroadcastConfig()
		cfg.Gateway, cfg.Token, cfg.Key, cfg.InputArgs, cfg.Client = r.base, testIngestToken, priv, testSource("120"), r.client
		st, err := live.Broadcast(ctx, cfg, testLogger(t))
		done <- result{st, err}
	}()
	waitFor(t, 60*time.Second, "a first media segment on the gateway", func() bool {
		var st live.StreamStatus
		res := r.get(t, "/api/live/"+id.String(), nil)
		return res.status == 200 && json.Unmarshal(res.body, &st) == nil && st.EdgeSeq != nil
	})
	cancel()
	select {
	case res := <-done:
		if !errors.Is(res.err, context.Canceled) || res.st.Uploaded < 2 || !res.st.Ended {
			t.Errorf("cancelled broadcast: %v, stats %+v; want context.Canceled after ≥ 2 uploads, and the stream ended", res.err, res.st)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Broadcast did not return within 30 s of cancel")
	}
}
