package live

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWatcherRollingPlaylist: the uploader follows ffmpeg's rolling playlist by media sequence
// number: each segment once, init first, segments that left the playlist before their upload
// counted as skipped, an unfinished last line left for the next read.
func TestWatcherRollingPlaylist(t *testing.T) {
	priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	id := StreamIDOfKey(priv)
	o := NewOrigin(OriginConfig{IngestToken: originToken})
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
	var st BroadcastStats
	up := &uploader{cfg: BroadcastConfig{Token: originToken, Key: priv, Client: srv.Client(), RetryFor: time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, base: srv.URL, id: id, stats: &st}
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
		t.Errorf("stats %+v, want 5 uploaded (init, 3..6), 3 skipped", st)
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
