package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestQuickStartPaced: the quick start's stream (?quick=1, what the watch page's <video> starts
// on) sends a head start of the film at once, then no faster than quickPace × its bitrate (the
// probe's), so that a late hand-over to webtorrent does not cost the whole file; the same file
// without the mark comes whole, unpaced. Bounds are upper bounds only: a slow machine sends less.
func TestQuickStartPaced(t *testing.T) {
	needTools(t, "ffmpeg", "ffprobe")
	r := startGateway(t, func(c *Config) { c.Demo, c.FFprobe = true, "ffprobe" })
	var views []torrentView
	if err := json.Unmarshal(r.get(t, "/api/torrents", nil).body, &views); err != nil || len(views) != 1 {
		t.Fatalf("list: %v %+v", err, views)
	}
	ih := views[0].InfoHash
	bitrate := waitBitrate(t, r, ih)
	head := int(max(float64(quickMinHeadStart), bitrate*quickHeadStart.Seconds()))
	if len(demoVideo) < head+256<<10 {
		t.Fatalf("the demo (%d bytes at %.0f B/s) is too short to see the pace after a head start of %d bytes", len(demoVideo), bitrate, head)
	}

	start := time.Now()
	res, err := r.client.Get(r.base + "/stream/" + ih + "/0?quick=1")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("quick start: %d", res.StatusCode)
	}
	got := make([]byte, head)
	if _, err := io.ReadFull(res.Body, got); err != nil {
		t.Fatalf("the head start: %v", err)
	}
	if !bytes.Equal(got, demoVideo[:head]) {
		t.Fatal("the head start differs from the file")
	}
	// Read on for a second: no more than the pace allows since the request (the server began
	// later, so its allowance was smaller still), give or take a chunk.
	more := make(chan int, 1)
	go func() {
		n, _ := io.Copy(io.Discard, res.Body)
		more <- int(n)
	}()
	time.Sleep(time.Second)
	res.Body.Close()
	n := <-more
	elapsed := time.Since(start).Seconds()
	limit := float64(head) + elapsed*quickPace*bitrate + 2*capChunk
	if total := float64(head + n); total > limit {
		t.Errorf("quick start sent %.0f bytes in %.2f s, more than the pace allows (%.0f: head start %d, then %.0f B/s)", total, elapsed, limit, head, quickPace*bitrate)
	}
	if head+n >= len(demoVideo) {
		t.Errorf("quick start sent the whole file (%d bytes) in %.2f s", len(demoVideo), elapsed)
	}

	// Without the mark: the whole file, as fast as it goes.
	if res := r.get(t, "/stream/"+ih+"/0", nil); res.status != http.StatusOK || !bytes.Equal(res.body, demoVideo) {
		t.Errorf("plain stream: %d, %d bytes, want the whole file (%d)", res.status, len(res.body), len(demoVideo))
	}

	// A shutdown drains open answers (within ShutdownTimeout, 3 s here): a paced one goes on at
	// full speed and ends whole, where its pace would take ten more seconds.
	res, err = r.client.Get(r.base + "/stream/" + ih + "/0?quick=1")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if _, err := io.ReadFull(res.Body, got); err != nil {
		t.Fatalf("the head start: %v", err)
	}
	stopped := make(chan struct{})
	go func() { r.stop(); close(stopped) }() // r.stop fails the test when the drain cut answers off
	rest, err := io.ReadAll(res.Body)
	if err != nil || !bytes.Equal(append(got, rest...), demoVideo) {
		t.Errorf("quick start through a shutdown: %d bytes (%v), want the whole file (%d)", head+len(rest), err, len(demoVideo))
	}
	<-stopped
}

// TestStreamPaceHeadStart: up to the head start nothing waits; well past it a send waits (with
// its context done, wait says so), by the probe's bitrate, or while the probe runs by
// quickProbingBitrate; with no probe to come, nothing is paced.
func TestStreamPaceHeadStart(t *testing.T) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name    string
		rate    float64
		probing bool
		head    int // bytes sent at once
	}{
		{"known bitrate", 100e3, false, quickMinHeadStart},
		{"known high bitrate", 2e6, false, 8e6},
		{"probing", 0, true, 4e6},
	} {
		p := newStreamPace(func() (float64, bool) { return c.rate, c.probing }, nil)
		for sent := 0; sent+capChunk <= c.head-4*capChunk; sent += capChunk {
			if err := p.wait(done, capChunk); err != nil {
				t.Fatalf("%s: the head start waited at %d bytes (of %d): %v", c.name, sent, c.head, err)
			}
		}
		if err := p.wait(done, 4<<20); err == nil {
			t.Errorf("%s: 4 MiB past the head start went at once", c.name)
		}
	}
	p := newStreamPace(func() (float64, bool) { return 0, false }, nil)
	if err := p.wait(done, 64<<20); err != nil {
		t.Errorf("no probe to come: paced anyway: %v", err)
	}
}

// waitBitrate waits for the probe of the torrent ih's only file and returns its bitrate in bytes
// per second.
func waitBitrate(t *testing.T, r *running, ih string) float64 {
	t.Helper()
	var bitrate float64
	waitFor(t, 60*time.Second, "the probe of "+ih, func() bool {
		var v torrentView
		if json.Unmarshal(r.get(t, "/api/torrents/"+ih, nil).body, &v) != nil || len(v.Files) != 1 {
			return false
		}
		if m := v.Files[0].Media; m != nil && m.State == "done" && m.Info.Bitrate > 0 {
			bitrate = float64(m.Info.Bitrate) / 8
			return true
		}
		return false
	})
	return bitrate
}

// TestOwnReadsNotEgress: the gateway's own reads of its /stream (ffprobe's probe and the keyframe
// index, through ownStreamURL) are neither held to the upload cap nor counted as HTTP egress;
// a read that only claims to be its own (a wrong token) is a viewer's, capped and counted.
func TestOwnReadsNotEgress(t *testing.T) {
	needTools(t, "ffmpeg", "ffprobe")
	r := startGateway(t, func(c *Config) { c.Demo, c.FFprobe, c.UploadRate = true, "ffprobe", 64<<10 })
	demo := demoInfoHash(t, r)
	waitBitrate(t, r, demo)
	e, _ := r.g.torrents.Get(mustHash(t, demo))
	if sent := httpSent(e); sent != 0 {
		t.Errorf("after the probe: %d bytes counted as HTTP egress, want 0", sent)
	}
	if tokens := r.g.uploadLimit.Tokens(); tokens < 0.99*uploadBurst {
		t.Errorf("after the probe: %.0f of the cap's %d tokens left, want them all", tokens, uploadBurst)
	}
	res := r.get(t, "/stream/"+demo+"/0?"+ownParam+"=not-the-token", map[string]string{"Range": "bytes=0-65535"})
	if res.status != http.StatusPartialContent || len(res.body) != 65536 {
		t.Fatalf("a viewer's range: %d, %d bytes", res.status, len(res.body))
	}
	// The handler counts a chunk after its Write returns, which can be after the client has it.
	deadline := time.Now().Add(5 * time.Second)
	for httpSent(e) < 65536 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if sent := httpSent(e); sent != 65536 {
		t.Errorf("a viewer's 64 KiB with a wrong token: %d bytes counted, want 65536", sent)
	}
	if tokens := r.g.uploadLimit.Tokens(); tokens > uploadBurst-60000 {
		t.Errorf("a viewer's 64 KiB with a wrong token: %.0f tokens left, want them taken", tokens)
	}
}
