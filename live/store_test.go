package live

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// logLines collects log records, for tests that check what was logged.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logLines) WithGroup(string) slog.Handler            { return l }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, b.String())
	return nil
}

// with is the lines holding every one of words.
func (l *logLines) with(words ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// diskWindow makes a window of b's stream kept in dir, on clock c.
func diskWindow(t testing.TB, b *broadcaster, c *clock, dir string, log *slog.Logger, mutate func(*WindowConfig)) *Window {
	t.Helper()
	return newTestWindow(t, b, c, func(wc *WindowConfig) {
		wc.Dir, wc.Log = dir, log
		if mutate != nil {
			mutate(wc)
		}
	})
}

// files is the names in dir, sorted.
func files(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// wantFiles is what a window's folder must hold: each segment with bytes, and its record.
func wantFiles(w *Window) []string {
	var out []string
	for _, s := range w.Segments() {
		if s.Data != nil {
			out = append(out, SegmentName(s.Kind, s.Seq), SegmentName(s.Kind, s.Seq)+".json")
		}
	}
	if _, ok := w.Ended(); ok {
		out = append(out, "end.json")
	}
	sort.Strings(out)
	return out
}

func playlistOf(t testing.TB, w *Window) string {
	t.Helper()
	b, err := w.Playlist(PlaylistOptions{URI: func(e Entry) string { return SegmentName(e.Kind, e.Seq) }})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func manifestOf(t testing.TB, w *Window) string {
	t.Helper()
	b, err := json.Marshal(w.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWindowLoadGoesOn: a window kept on disk comes back as it was: the same segments and bytes,
// the same playlist (media sequence, discontinuity sequence after discontinuities left the window,
// target duration after the longest segment left it, gaps) and manifest; replays and older
// entries are still refused, and the next segments continue both windows alike.
func TestWindowLoadGoesOn(t *testing.T) {
	b := newBroadcaster(t)
	c := &clock{now: t0}
	dir := filepath.Join(t.TempDir(), b.id.String())
	cfg := func(wc *WindowConfig) { wc.Duration = 20 * time.Second }
	w := diskWindow(t, b, c, dir, nil, cfg)
	add := adder(t, w)
	add(b.segment(KindInit, 0, c.Now(), 0))
	add(b.segment(KindMedia, 0, c.Now(), 5*time.Second)) // the longest: target 5 s
	add(b.media(1, c.Now().Add(5*time.Second)))
	add(b.media(3, c.Now().Add(9*time.Second))) // a gap: a discontinuity
	add(b.segment(KindInit, 4, c.Now().Add(11*time.Second), 0))
	add(b.media(4, c.Now().Add(11*time.Second))) // a new init: a discontinuity
	add(b.media(5, c.Now().Add(13*time.Second)))
	add(b.media(6, c.Now().Add(15*time.Second)))
	c.Advance(31 * time.Second) // media 0–3 leave: the 5 s segment and the gap's discontinuity
	before := playlistOf(t, w)
	if !strings.Contains(before, "#EXT-X-TARGETDURATION:5\n#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n") {
		t.Fatalf("the playlist before does not show what the test is about:\n%s", before)
	}
	if got, want := files(t, dir), wantFiles(w); !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}

	w2 := diskWindow(t, b, c, dir, nil, cfg)
	n, err := w2.Load()
	if err != nil || n != 4 {
		t.Fatalf("Load: %d segments, %v; want 4", n, err)
	}
	if after := playlistOf(t, w2); after != before {
		t.Errorf("playlist after Load:\n%s\nbefore:\n%s", after, before)
	}
	if a, b := manifestOf(t, w2), manifestOf(t, w); a != b {
		t.Errorf("manifest after Load:\n%s\nbefore:\n%s", a, b)
	}
	for _, s := range w.Segments() {
		s2, ok := w2.Get(s.Kind, s.Seq)
		if !ok || !bytes.Equal(s2.Data, s.Data) || s2.Missing != s.Missing || s2.Discontinuity != s.Discontinuity {
			t.Errorf("%s %d after Load: %v %+v, want %+v", s.Kind, s.Seq, ok, s2, s)
		}
	}
	for _, bad := range []struct {
		seq  uint64
		want error
	}{{6, ErrReplay}, {5, ErrReplay}, {2, ErrOutOfOrder}} {
		se, data := b.media(bad.seq, c.Now())
		if _, err := w2.Add(se, data); !errors.Is(err, bad.want) {
			t.Errorf("media %d after Load: %v, want %v", bad.seq, err, bad.want)
		}
	}
	if _, err := w2.Load(); err == nil {
		t.Error("a second Load into a window that holds segments: no error")
	}
	// Both go on alike, with a gap and a new init.
	for _, w := range []*Window{w, w2} {
		add := adder(t, w)
		add(b.media(7, c.Now().Add(-2*time.Second)))
		add(b.media(9, c.Now()))
		add(b.segment(KindInit, 10, c.Now(), 0))
		add(b.media(10, c.Now()))
	}
	if a, b := playlistOf(t, w2), playlistOf(t, w); a != b {
		t.Errorf("after more segments, the reloaded window's playlist:\n%s\nthe original's:\n%s", a, b)
	}
	// And a third window, loading what both wrote (the same files), agrees.
	w3 := diskWindow(t, b, c, dir, nil, cfg)
	if _, err := w3.Load(); err != nil {
		t.Fatal(err)
	}
	if a, b := playlistOf(t, w3), playlistOf(t, w); a != b {
		t.Errorf("loaded again:\n%s\nwant:\n%s", a, b)
	}
}

// TestWindowLoadDropsWhatDoesNotVerify: files changed on disk (bytes flipped or cut, a record cut
// short or altered, one signed by another key or naming another segment), bytes without a
// record and left-over temporary files are deleted with a log line, never served: the window
// shows gaps there and serves the rest.
func TestWindowLoadDropsWhatDoesNotVerify(t *testing.T) {
	b, mallory := newBroadcaster(t), newBroadcaster(t)
	c := &clock{now: t0}
	dir := t.TempDir()
	w := diskWindow(t, b, c, dir, nil, nil)
	add := adder(t, w)
	add(b.segment(KindInit, 0, c.Now(), 0))
	for seq := range uint64(9) {
		add(b.media(seq, c.Now().Add(time.Duration(seq)*2*time.Second)))
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	edit := func(name string, f func([]byte) []byte) {
		t.Helper()
		data, err := os.ReadFile(path(name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path(name), f(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(path(name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit("1.m4s", func(d []byte) []byte { d[3] ^= 1; return d })      // bytes flipped
	edit("2.m4s", func(d []byte) []byte { return d[:len(d)-1] })      // bytes cut short
	edit("3.m4s", func(d []byte) []byte { return append(d, '!') })    // bytes too long
	edit("4.m4s.json", func(d []byte) []byte { return d[:len(d)/2] }) // record cut short
	edit("5.m4s.json", func(d []byte) []byte {
		return bytes.Replace(d, []byte(`"duration_us":2000000`), []byte(`"duration_us":2000001`), 1)
	}) // altered: the signature fails
	forged, forgedData := mallory.media(6, c.Now()) // signed by another key
	write("6.m4s", forgedData)
	js, _ := json.Marshal(segmentRecord{Version: recordVersion, Entry: forged})
	write("6.m4s.json", js)
	edit("7.m4s.json", func([]byte) []byte { // the record of media 0, under 7's name
		d, _ := os.ReadFile(path("0.m4s.json"))
		return d
	})
	write("20.m4s", []byte("bytes without a record"))
	write(".tmp-123", []byte("a write cut short"))
	write("notes.txt", []byte("not the window's"))

	log := &logLines{}
	w2 := diskWindow(t, b, c, dir, slog.New(log), nil)
	n, err := w2.Load()
	if err != nil || n != 3 {
		t.Fatalf("Load: %d segments, %v; want 3 (init 0, media 0 and 8)", n, err)
	}
	for seq := uint64(1); seq < 8; seq++ {
		name := SegmentName(KindMedia, seq)
		if _, ok := w2.Media(seq); ok {
			t.Errorf("media %d is in the window", seq)
		}
		if len(log.with("WARN", "does not verify", filepath.Join(dir, name+".json"))) != 1 {
			t.Errorf("no warning about %s; logged:\n%s", name, strings.Join(log.lines, "\n"))
		}
	}
	for _, seq := range []uint64{0, 8} {
		s, ok := w2.Media(seq)
		if want, _ := w.Media(seq); !ok || !bytes.Equal(s.Data, want.Data) {
			t.Errorf("media %d: %v", seq, ok)
		}
	}
	if len(log.with("WARN", "no record", "20.m4s")) != 1 {
		t.Errorf("no warning about bytes without a record; logged:\n%s", strings.Join(log.lines, "\n"))
	}
	want := []string{"0.m4s", "0.m4s.json", "8.m4s", "8.m4s.json", "init-0.mp4", "init-0.mp4.json", "notes.txt"}
	if got := files(t, dir); !slices.Equal(got, want) {
		t.Errorf("files after Load %v, want %v", got, want)
	}
	pl := playlistOf(t, w2)
	if !strings.Contains(pl, "#EXT-X-MEDIA-SEQUENCE:0\n") || strings.Count(pl, "#EXT-X-GAP") != 7 || !strings.Contains(pl, "#EXT-X-DISCONTINUITY\n") {
		t.Errorf("playlist after dropping media 1–7, want them as gaps:\n%s", pl)
	}
}

// TestWindowDiskBound: the disk holds exactly the segments whose bytes the window keeps, so
// MaxBytes bounds it as it bounds the memory, whatever leaves the window (bytes over MaxBytes,
// media older than Duration, an init no media needs, a segment larger than MaxBytes on its own).
func TestWindowDiskBound(t *testing.T) {
	b := newBroadcaster(t)
	c := &clock{now: t0}
	dir := t.TempDir()
	const maxBytes = 1000
	w := diskWindow(t, b, c, dir, nil, func(wc *WindowConfig) { wc.MaxBytes, wc.Duration = maxBytes, time.Minute })
	check := func(when string) {
		t.Helper()
		var size int64
		for _, name := range files(t, dir) {
			if !strings.HasSuffix(name, ".json") {
				fi, err := os.Stat(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				size += fi.Size()
			}
		}
		if got, want := files(t, dir), wantFiles(w); !slices.Equal(got, want) {
			t.Errorf("%s: files %v, want %v", when, got, want)
		}
		if st := w.Stats(); size > maxBytes || size != st.Bytes {
			t.Errorf("%s: %d segment bytes on disk, %d in memory, the bound is %d", when, size, st.Bytes, maxBytes)
		}
	}
	seg := func(kind Kind, seq uint64, size int) {
		t.Helper()
		dur := time.Second
		if kind == KindInit {
			dur = 0
		}
		data := bytes.Repeat([]byte{byte(seq)}, size)
		mustAdd(t, w, mustEntry(t, b.priv, kind, seq, c.Now(), dur, data), data)
	}
	seg(KindInit, 0, 100)
	for seq := range uint64(12) {
		seg(KindMedia, seq, 150+int(seq))
		c.Advance(time.Second)
		check("after media " + SegmentName(KindMedia, seq))
	}
	seg(KindInit, 12, 120)
	seg(KindMedia, 12, 2000) // alone over MaxBytes: kept in the window without its bytes
	check("after a segment over MaxBytes")
	c.Advance(61 * time.Second) // media 0–12 leave by time, and with them init 0
	seg(KindMedia, 13, 200)
	check("after the oldest left by time")
	if got := files(t, dir); slices.Contains(got, "init-0.mp4") || !slices.Contains(got, "init-12.mp4") {
		t.Errorf("files %v: init 0 heads nothing any more, init 12 heads media 13", got)
	}
}

// TestWindowDiskEnd: the broadcaster's end survives a restart; a later segment lifts it, on disk
// too; an end that does not verify is dropped.
func TestWindowDiskEnd(t *testing.T) {
	b, mallory := newBroadcaster(t), newBroadcaster(t)
	c := &clock{now: t0}
	dir := t.TempDir()
	w := diskWindow(t, b, c, dir, nil, nil)
	adder(t, w)(b.segment(KindInit, 0, c.Now(), 0))
	adder(t, w)(b.media(0, c.Now()))
	if err := w.End(SignEnd(b.priv, 0, c.Now())); err != nil {
		t.Fatal(err)
	}
	load := func() *Window {
		t.Helper()
		w := diskWindow(t, b, c, dir, nil, nil)
		if _, err := w.Load(); err != nil {
			t.Fatal(err)
		}
		return w
	}
	w2 := load()
	if e, ok := w2.Ended(); !ok || e.LastSeq != 0 || !strings.HasSuffix(playlistOf(t, w2), "#EXT-X-ENDLIST\n") {
		t.Fatalf("ended after Load: %v %+v\n%s", ok, e, playlistOf(t, w2))
	}
	adder(t, w2)(b.media(1, c.Now())) // the broadcaster goes on
	if _, ok := load().Ended(); ok || slices.Contains(files(t, dir), "end.json") {
		t.Errorf("the end still holds after a later segment: files %v", files(t, dir))
	}

	js, _ := json.Marshal(SignEnd(mallory.priv, 5, c.Now()))
	if err := os.WriteFile(filepath.Join(dir, "end.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	log := &logLines{}
	w3 := diskWindow(t, b, c, dir, slog.New(log), nil)
	if _, err := w3.Load(); err != nil {
		t.Fatal(err)
	}
	if _, ok := w3.Ended(); ok || len(log.with("WARN", "end", "does not verify")) != 1 || slices.Contains(files(t, dir), "end.json") {
		t.Errorf("another key's end: ended %v, logged %q", ok, log.lines)
	}
}

// TestOriginRestore: an origin restarted on the same folder serves its streams again (playlist,
// segments, state: live until its broadcaster had time to come back), takes the next upload without the init again, ends what was ended, reseeds
// the newest segments, gives followed streams their windows back, drops streams with nothing
// left and those over MaxStreams, and leaves other folders alone.
func TestOriginRestore(t *testing.T) {
	c := &clock{now: t0}
	dir := t.TempDir()
	mutate := func(oc *OriginConfig) { oc.Dir, oc.Now, oc.Window, oc.PlaylistSegments = dir, c.Now, time.Minute, 3 }
	o := newTestOrigin(t, mutate)
	onAir, ended, stale, followed := newBroadcaster(t), newBroadcaster(t), newBroadcaster(t), newBroadcaster(t)
	put := func(o *Origin, b *broadcaster, kind Kind, seq uint64, at time.Time) {
		t.Helper()
		dur := time.Second
		if kind == KindInit {
			dur = 0
		}
		se, data := b.segment(kind, seq, at, dur)
		if rec := originPut(t, o, se, data); rec.Code != http.StatusCreated {
			t.Fatalf("%s %d: %d %s", kind, seq, rec.Code, rec.Body)
		}
	}
	put(o, stale, KindInit, 0, c.Now())
	put(o, stale, KindMedia, 0, c.Now())
	c.Advance(45 * time.Second)
	for _, b := range []*broadcaster{onAir, ended} {
		put(o, b, KindInit, 0, c.Now())
		for seq := range uint64(5) {
			put(o, b, KindMedia, seq, c.Now().Add(time.Duration(seq)*time.Second))
		}
	}
	rec := httptest.NewRecorder()
	js, _ := json.Marshal(SignEnd(ended.priv, 4, c.Now()))
	req := httptest.NewRequest(http.MethodPut, "/live/"+ended.id.String()+"/end", bytes.NewReader(js))
	req.Header.Set("Authorization", "Bearer "+originToken)
	o.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("end: %d %s", rec.Code, rec.Body)
	}
	if err := o.Follow(followed.id, func() RelayStatus { return RelayStatus{} }); err != nil {
		t.Fatal(err)
	}
	for seq := range uint64(2) {
		se, data := followed.media(seq, c.Now())
		if seq == 0 {
			se, data = followed.segment(KindInit, 0, c.Now(), 0)
		}
		if _, err := o.AddRelayed(followed.id, se, data); err != nil {
			t.Fatal(err)
		}
	}
	before := map[StreamID]string{}
	for _, b := range []*broadcaster{onAir, ended, followed} {
		before[b.id] = originGet(t, o, "/live/"+b.id.String()+"/index.m3u8")
	}
	os.Mkdir(filepath.Join(dir, "not-a-stream"), 0o755)
	c.Advance(20 * time.Second) // the stale stream's only media segment leaves the window

	var seeded []string
	log := &logLines{}
	o2, err := NewOrigin(func() OriginConfig {
		cfg := DefaultOriginConfig()
		cfg.IngestToken = originToken
		mutate(&cfg)
		cfg.OnSegment = func(id StreamID, s Segment) {
			if id == onAir.id {
				seeded = append(seeded, SegmentName(s.Kind, s.Seq))
			}
		}
		return cfg
	}(), slog.New(log))
	if err != nil {
		t.Fatal(err)
	}
	if err := o2.Follow(followed.id, func() RelayStatus { return RelayStatus{} }); err != nil {
		t.Fatal(err)
	}
	if err := o2.Restore(); err != nil {
		t.Fatal(err)
	}
	for _, b := range []*broadcaster{onAir, ended, followed} {
		if got := originGet(t, o2, "/live/"+b.id.String()+"/index.m3u8"); got != before[b.id] {
			t.Errorf("playlist of %s after the restart:\n%s\nbefore:\n%s", b.id, got, before[b.id])
		}
	}
	if o2.stream(stale.id) != nil || slices.Contains(files(t, dir), stale.id.String()) {
		t.Errorf("the stale stream came back: files %v", files(t, dir))
	}
	if !slices.Contains(files(t, dir), "not-a-stream") || len(log.with("WARN", "not-a-stream")) != 1 {
		t.Errorf("a folder not of a stream: files %v, logged %q", files(t, dir), log.lines)
	}
	if want := []string{"init-0.mp4", "2.m4s", "3.m4s", "4.m4s"}; !slices.Equal(seeded, want) {
		t.Errorf("reseeded %v, want %v (the newest PlaylistSegments and their init)", seeded, want)
	}
	if st := originStatus(t, o2, ended.id); st.State != StateEnded {
		t.Errorf("ended stream after the restart: %s", st.State)
	}
	if st := originStatus(t, o2, onAir.id); st.NextSeq != 5 || st.Window.Media != 5 || st.Relay != nil || st.State != StateLive {
		t.Errorf("live stream after the restart: %+v; want it live (its broadcaster has 3 target durations to come back)", st)
	}
	c.Advance(4 * time.Second)
	if st := originStatus(t, o2, onAir.id); st.State != StateStalled {
		t.Errorf("4 s after the restart without a segment: %s, want stalled", st.State)
	}
	if st := originStatus(t, o2, followed.id); st.Relay == nil || st.Window.Media != 1 {
		t.Errorf("followed stream after the restart: %+v", st)
	}
	// The broadcaster goes on without sending the init again.
	put(o2, onAir, KindMedia, 5, c.Now())
	if pl := originGet(t, o2, "/live/"+onAir.id.String()+"/index.m3u8"); !strings.Contains(pl, "#EXT-X-MEDIA-SEQUENCE:3\n") || !strings.HasSuffix(pl, "\n5.m4s\n") || strings.Contains(pl, "DISCONTINUITY") {
		t.Errorf("playlist after the next upload:\n%s", pl)
	}

	// Over MaxStreams, the most recently active come back, and only they are seeded again.
	seededStreams := map[StreamID]bool{}
	o3, err := NewOrigin(func() OriginConfig {
		cfg := DefaultOriginConfig()
		mutate(&cfg)
		cfg.MaxStreams = 1
		cfg.OnSegment = func(id StreamID, _ Segment) { seededStreams[id] = true }
		return cfg
	}(), slog.New(log))
	if err != nil {
		t.Fatal(err)
	}
	if err := o3.Restore(); err != nil {
		t.Fatal(err)
	}
	if ids := o3.Streams(); len(ids) != 1 || ids[0] != onAir.id || len(log.with("WARN", "MaxStreams")) != 2 || len(seededStreams) != 1 || !seededStreams[onAir.id] {
		t.Errorf("streams over MaxStreams: %v, seeded %v; logged %q", ids, seededStreams, log.lines)
	}
}

func originGet(t testing.TB, o *Origin, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	o.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// BenchmarkWindowLoad: reading a kept window back at a restart, every segment's SHA-256 and
// infohash checked (64 segments of 1 MiB, bytes/s is the rate): what Restore costs per stream
// before the gateway serves.
func BenchmarkWindowLoad(b *testing.B) {
	br := newBroadcaster(b)
	c := &clock{now: t0}
	dir := b.TempDir()
	cfg := func(wc *WindowConfig) { wc.MaxBytes = 1 << 30 }
	w := diskWindow(b, br, c, dir, nil, cfg)
	data := bytes.Repeat([]byte("swarmgate"), (1<<20)/9)
	init := []byte("init")
	mustAdd(b, w, mustEntry(b, br.priv, KindInit, 0, c.Now(), 0, init), init)
	const n = 64
	for seq := range uint64(n) {
		d := append([]byte(nil), data...)
		d[0] = byte(seq)
		mustAdd(b, w, mustEntry(b, br.priv, KindMedia, seq, c.Now(), time.Second, d), d)
	}
	b.SetBytes(int64(n * len(data)))
	b.ResetTimer()
	for range b.N {
		w := diskWindow(b, br, c, dir, nil, cfg)
		if got, err := w.Load(); err != nil || got != n+1 {
			b.Fatalf("Load: %d, %v", got, err)
		}
	}
}
