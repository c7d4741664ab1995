package live

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWatcherRollingPlaylist: the uploader follows ffmpeg's rolling playlist by media sequence
// number: each segment once, init first, segments that left the playlist before their upload
// counted as skipped, an unfinished last line left for the next read.
func TestWatcherRollingPlaylist(t *testing.T) {
	priv := mustTestKey(t)
	id := StreamIDOfKey(priv)
	o := newTestOrigin(t, nil)
	srv := httptest.NewServer(o)
	defer srv.Close()
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	playlist := func(first int, n int, tail string) {
		var b strings.Builder
		fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:%d\n#EXT-X-MAP:URI=\"init.mp4\"\n", first)
		for i := first; i < first+n; i++ {
			write(fmt.Sprintf("seg%d.m4s", i), fmt.Sprintf("segment %d", i))
			fmt.Fprintf(&b, "#EXTINF:1.000000,\n#EXT-X-PROGRAM-DATE-TIME:%s\nseg%d.m4s\n",
				now.Add(time.Duration(i)*time.Second).Format("2006-01-02T15:04:05.000+0000"), i)
		}
		write("index.m3u8", b.String()+tail)
	}
	write("init.mp4", "init")
	up, st := testUploader(srv, priv)
	w := &watcher{dir: dir, seq: 100}
	ctx := context.Background()

	playlist(3, 2, "#EXTINF:1.000000,\nseg5.m") // 0-2 already gone; seg5 not finished
	if err := w.upload(ctx, up); err != nil {
		t.Fatal(err)
	}
	playlist(4, 3, "")
	if err := w.upload(ctx, up); err != nil {
		t.Fatal(err)
	}
	if err := w.upload(ctx, up); err != nil { // nothing new
		t.Fatal(err)
	}
	if st.Uploaded != 5 || st.Failed != 3 || st.Refused != 0 {
		t.Errorf("stats %+v, want 5 uploaded (init, 3..6), 3 skipped", *st)
	}
	m := o.stream(id).w.Manifest()
	var got []string
	for _, e := range m.Entries {
		got = append(got, fmt.Sprintf("%s%d", e.Kind, e.Seq))
		if e.Kind == KindMedia && e.Start().Sub(now.Add(time.Duration(e.Seq-100)*time.Second)).Abs() > time.Millisecond {
			t.Errorf("media %d: time %v, want the playlist's program date time", e.Seq, e.Start())
		}
	}
	if g := strings.Join(got, " "); g != "init103 media103 media104 media105 media106" {
		t.Errorf("uploaded %s", g)
	}
	if err := m.Verify(); err != nil {
		t.Error(err)
	}
}

// TestBroadcastAfterGatewayRestart: the gateway loses the stream mid-broadcast (its window is in
// memory; here a new Origin behind the same URL): it refuses the next media segment for want of
// its init, the broadcaster sends the init again, and the stream plays on there.
func TestBroadcastAfterGatewayRestart(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (apt-get install ffmpeg)")
	}
	priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	id := StreamIDOfKey(priv)
	var current atomic.Pointer[Origin]
	current.Store(newTestOrigin(t, nil))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { current.Load().ServeHTTP(w, r) }))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan BroadcastStats, 1)
	go func() {
		cfg := DefaultBroadcastConfig()
		cfg.Gateway, cfg.Token, cfg.Key, cfg.KeepOpen = srv.URL, originToken, priv, true
		cfg.InputArgs = []string{"-re", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25", "-f", "lavfi", "-i", "sine", "-t", "8"}
		st, _ := Broadcast(ctx, cfg, nil)
		done <- st
	}()
	media := func(o *Origin) int {
		st, ok := o.Status(id, "")
		if !ok {
			return 0
		}
		return st.Window.Media
	}
	for media(current.Load()) < 2 {
		if ctx.Err() != nil {
			t.Fatal("no segments on the first origin")
		}
		time.Sleep(100 * time.Millisecond)
	}
	restarted := newTestOrigin(t, nil)
	current.Store(restarted)
	st := <-done
	s, ok := restarted.Status(id, "")
	if !ok || s.Window.Inits != 1 || s.Window.Media < 2 || restarted.Counts()[ResultMissingInit] != 1 || st.Refused != 0 {
		t.Fatalf("after the restart: %+v, counts %v, broadcast %+v; want the init sent again and the stream going on", s, restarted.Counts(), st)
	}
	s0, _ := current.Load().Status(id, "")
	pl, err := restarted.stream(id).w.Playlist(PlaylistOptions{URI: func(e Entry) string { return SegmentName(e.Kind, e.Seq) }})
	if err != nil || !strings.Contains(string(pl), fmt.Sprintf("#EXT-X-MAP:URI=\"init-%d.mp4\"", *s0.Window.FirstSeq)) {
		t.Errorf("playlist after the restart: %v\n%s", err, pl)
	}
}

// TestCancelDuringUpload: a broadcast cancelled (Ctrl-C) while a segment is on its way lets that
// upload finish, so the signed end it sends names the last segment the gateway took and the
// stream shows as ended rather than stalled.
func TestCancelDuringUpload(t *testing.T) {
	priv := mustTestKey(t)
	id := StreamIDOfKey(priv)
	o := newTestOrigin(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.ServeHTTP(w, r) // the answer is buffered until the handler returns
		if strings.Contains(r.URL.Path, "/media/") {
			// A slow answer: the gateway has the segment, the broadcaster not yet its 201.
			cancel()
			time.Sleep(300 * time.Millisecond)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"init.mp4": "init", "seg0.m4s": "segment 0",
		"index.m3u8": "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1.000000,\nseg0.m4s\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	up, st := testUploader(srv, priv)
	w := &watcher{dir: dir, seq: 7}
	if err := w.upload(ctx, up); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() == nil {
		t.Fatal("the media upload did not reach the gateway")
	}
	up.end(ctx)
	s, ok := o.Status(id, "")
	if st.Uploaded != 2 || !st.Ended || !ok || s.State != StateEnded {
		t.Errorf("broadcast %+v, stream %+v; want init and media counted and the stream ended", *st, s)
	}
}

// testUploader is the uploader Broadcast makes, for priv's stream on the gateway srv.
func testUploader(srv *httptest.Server, priv ed25519.PrivateKey) (*uploader, *BroadcastStats) {
	st := &BroadcastStats{}
	cfg := DefaultBroadcastConfig()
	cfg.Token, cfg.Key, cfg.Client, cfg.RetryFor = originToken, priv, srv.Client(), time.Second
	return &uploader{cfg: cfg, log: slog.New(slog.DiscardHandler), base: srv.URL, id: StreamIDOfKey(priv), stats: st}, st
}
