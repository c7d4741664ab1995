package live

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is an injectable clock: tests move it, nothing sleeps.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// broadcaster makes signed segments of one stream with their bytes.
type broadcaster struct {
	t    testing.TB
	priv ed25519.PrivateKey
	id   StreamID
}

func newBroadcaster(t testing.TB) *broadcaster {
	priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return &broadcaster{t: t, priv: priv, id: StreamIDOfKey(priv)}
}

func (b *broadcaster) segment(kind Kind, seq uint64, at time.Time, dur time.Duration) (SignedEntry, []byte) {
	b.t.Helper()
	data := []byte(fmt.Sprintf("%s segment %d of %s", kind, seq, b.id))
	return mustEntry(b.t, b.priv, kind, seq, at, dur, data), data
}

func (b *broadcaster) media(seq uint64, at time.Time) (SignedEntry, []byte) {
	b.t.Helper()
	return b.segment(KindMedia, seq, at, 2*time.Second)
}

// newTestWindow makes a window of b's stream on clock c, with the defaults changed by mutate (if not nil).
func newTestWindow(t testing.TB, b *broadcaster, c *clock, mutate func(*WindowConfig)) *Window {
	t.Helper()
	cfg := DefaultWindowConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	cfg.Stream = b.id
	cfg.Now = c.Now
	w, err := NewWindow(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func mustAdd(t testing.TB, w *Window, s SignedEntry, data []byte) Added {
	t.Helper()
	a, err := w.Add(s, data)
	if err != nil {
		t.Fatalf("Add(%s %d): %v", s.Kind, s.Seq, err)
	}
	return a
}

// adder is mustAdd taking a segment pair: adder(t, w)(b.media(1, now)).
func adder(t testing.TB, w *Window) func(SignedEntry, []byte) Added {
	return func(s SignedEntry, d []byte) Added {
		t.Helper()
		return mustAdd(t, w, s, d)
	}
}

func TestWindowRejects(t *testing.T) {
	b := newBroadcaster(t)
	mallory := newBroadcaster(t)
	now := t0
	for _, tc := range []struct {
		name string
		cfg  func(*WindowConfig)
		// setup adds entries first; then the entry made by bad is added and must fail with want.
		setup func(t *testing.T, w *Window)
		bad   func() (SignedEntry, []byte)
		want  error
	}{
		{name: "replay of the last entry",
			setup: func(t *testing.T, w *Window) { adder(t, w)(b.media(7, now)) },
			bad:   func() (SignedEntry, []byte) { return b.media(7, now) }, want: ErrReplay},
		{name: "replay of an older entry",
			setup: func(t *testing.T, w *Window) { adder(t, w)(b.media(7, now)); adder(t, w)(b.media(8, now)) },
			bad:   func() (SignedEntry, []byte) { return b.media(7, now) }, want: ErrReplay},
		{name: "replay without the bytes",
			setup: func(t *testing.T, w *Window) { adder(t, w)(b.media(7, now)) },
			bad:   func() (SignedEntry, []byte) { s, _ := b.media(7, now); return s, nil }, want: ErrReplay},
		{name: "replay of an init",
			setup: func(t *testing.T, w *Window) { adder(t, w)(b.segment(KindInit, 7, now, 0)) },
			bad:   func() (SignedEntry, []byte) { return b.segment(KindInit, 7, now, 0) }, want: ErrReplay},
		{name: "out of order",
			setup: func(t *testing.T, w *Window) { adder(t, w)(b.media(7, now)); adder(t, w)(b.media(9, now)) },
			bad:   func() (SignedEntry, []byte) { return b.media(8, now) }, want: ErrOutOfOrder},
		{name: "init after the media segment it would head",
			setup: func(t *testing.T, w *Window) { adder(t, w)(b.media(7, now)) },
			bad:   func() (SignedEntry, []byte) { return b.segment(KindInit, 7, now, 0) }, want: ErrOutOfOrder},
		{name: "too old",
			bad:  func() (SignedEntry, []byte) { return b.media(1, now.Add(-30*time.Minute-time.Millisecond)) },
			want: ErrTooOld},
		{name: "too old for a short window", cfg: func(wc *WindowConfig) { wc.Duration = time.Minute },
			bad:  func() (SignedEntry, []byte) { return b.media(1, now.Add(-61*time.Second)) },
			want: ErrTooOld},
		{name: "beyond the future skew",
			bad:  func() (SignedEntry, []byte) { return b.media(1, now.Add(DefaultFutureSkew+time.Millisecond)) },
			want: ErrFuture},
		{name: "beyond a configured skew", cfg: func(wc *WindowConfig) { wc.FutureSkew = time.Second },
			bad:  func() (SignedEntry, []byte) { return b.media(1, now.Add(2*time.Second)) },
			want: ErrFuture},
		{name: "init from the future",
			bad:  func() (SignedEntry, []byte) { return b.segment(KindInit, 1, now.Add(time.Hour), 0) },
			want: ErrFuture},
		{name: "too large", cfg: func(wc *WindowConfig) { wc.MaxSegmentSize = 10 },
			bad:  func() (SignedEntry, []byte) { return b.media(1, now) },
			want: ErrTooLarge},
		{name: "too large without the bytes", cfg: func(wc *WindowConfig) { wc.MaxSegmentSize = 10 },
			bad:  func() (SignedEntry, []byte) { s, _ := b.media(1, now); return s, nil },
			want: ErrTooLarge},
		{name: "another stream",
			bad:  func() (SignedEntry, []byte) { return mallory.media(1, now) },
			want: ErrWrongStream},
		{name: "bad signature",
			bad: func() (SignedEntry, []byte) {
				s, d := b.media(1, now)
				s.Seq = 2
				return s, d
			}, want: ErrBadSignature},
		{name: "mallory's signature on our stream",
			bad: func() (SignedEntry, []byte) {
				s, d := b.media(1, now)
				copy(s.Sig[:], ed25519.Sign(mallory.priv, s.SigningBytes()))
				return s, d
			}, want: ErrBadSignature},
		{name: "other bytes",
			bad: func() (SignedEntry, []byte) {
				s, d := b.media(1, now)
				d[0] ^= 1
				return s, d
			}, want: ErrContentMismatch},
		{name: "signed infohash is not the bytes' torrent",
			bad: func() (SignedEntry, []byte) {
				s, d := b.media(1, now)
				e := s.Entry
				e.InfoHash[0] ^= 1
				s, _ = Sign(b.priv, e)
				return s, d
			}, want: ErrInfoHashMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTestWindow(t, b, &clock{now: now}, tc.cfg)
			if tc.setup != nil {
				tc.setup(t, w)
			}
			before := w.Segments()
			s, d := tc.bad()
			_, err := w.Add(s, d)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Add: %v, want %v", err, tc.want)
			}
			var re *RejectError
			if !errors.As(err, &re) || re.Reason == "" {
				t.Errorf("%v is not a RejectError with a reason", err)
			}
			if after := w.Segments(); len(after) != len(before) {
				t.Errorf("a refused entry changed the window: %d then %d segments", len(before), len(after))
			}
			if st := w.Stats(); st.Rejected != 1 {
				t.Errorf("Stats.Rejected = %d, want 1", st.Rejected)
			}
		})
	}
}

func TestWindowAccepts(t *testing.T) {
	b := newBroadcaster(t)
	c := &clock{now: t0}
	w := newTestWindow(t, b, c, func(wc *WindowConfig) { wc.FutureSkew = 5 * time.Second })
	withoutBytes := func(s SignedEntry, _ []byte) (SignedEntry, []byte) { return s, nil }
	for _, add := range []struct {
		name string
		seg  func() (SignedEntry, []byte)
	}{
		{"first init, an hour old (inits have no age limit)", func() (SignedEntry, []byte) { return b.segment(KindInit, 0, t0.Add(-time.Hour), 0) }},
		{"media 0 right at the window's edge", func() (SignedEntry, []byte) { return b.media(0, t0.Add(-30*time.Minute)) }},
		{"media 1 within the skew", func() (SignedEntry, []byte) { return b.media(1, t0.Add(5*time.Second)) }},
		{"media 2 without its bytes", func() (SignedEntry, []byte) { return withoutBytes(b.media(2, t0)) }},
		{"a new init heading 3", func() (SignedEntry, []byte) { return b.segment(KindInit, 3, t0, 0) }},
		{"media 3", func() (SignedEntry, []byte) { return b.media(3, t0) }},
	} {
		if _, err := w.Add(add.seg()); err != nil {
			t.Errorf("%s: %v", add.name, err)
		}
	}
	if edge, ok := w.LiveEdge(); !ok || edge.Seq != 3 {
		t.Errorf("live edge %v %v, want media 3", edge.Seq, ok)
	}
	if s, ok := w.Media(2); !ok || s.Data != nil {
		t.Errorf("media 2: found %v, data %q; want found without data", ok, s.Data)
	}
	if s, ok := w.Media(1); !ok || VerifySegment(s.Entry, s.Data) != nil {
		t.Errorf("media 1: found %v, its data does not verify", ok)
	}
	if _, ok := w.Media(4); ok {
		t.Error("media 4 found")
	}
	for seq, want := range map[uint64]uint64{0: 0, 2: 0, 3: 3, 100: 3} {
		if in, ok := w.InitFor(seq); !ok || in.Seq != want || in.Kind != KindInit {
			t.Errorf("InitFor(%d) = %s %d %v, want init %d", seq, in.Kind, in.Seq, ok, want)
		}
	}
	var order []string
	for _, s := range w.Segments() {
		order = append(order, fmt.Sprintf("%s%d", s.Kind, s.Seq))
	}
	if got := strings.Join(order, " "); got != "init0 media0 media1 media2 init3 media3" {
		t.Errorf("segments in order %q", got)
	}
	m := w.Manifest()
	if err := m.Verify(); err != nil || len(m.Entries) != 6 || m.Stream != b.id {
		t.Errorf("manifest: %d entries, %v", len(m.Entries), err)
	}
	if s, _ := w.Media(3); !s.Discontinuity {
		t.Error("media 3 after a new init is not a discontinuity")
	}
	if st := w.Stats(); st.Accepted != 6 || st.Media != 4 || st.Inits != 2 || st.Gaps != 0 {
		t.Errorf("stats %+v", st)
	}
	if _, err := NewWindow(WindowConfig{}); err == nil {
		t.Error("a window without a stream")
	}
}

func TestWindowGaps(t *testing.T) {
	b := newBroadcaster(t)
	w := newTestWindow(t, b, &clock{now: t0}, nil)
	for _, tc := range []struct {
		seq         uint64
		wantMissing uint64
	}{{5, 0}, {6, 0}, {8, 1}, {9, 0}, {20, 10}} {
		a := adder(t, w)(b.media(tc.seq, t0))
		if a.Missing != tc.wantMissing {
			t.Errorf("Add(%d).Missing = %d, want %d", tc.seq, a.Missing, tc.wantMissing)
		}
		s, _ := w.Media(tc.seq)
		if s.Missing != tc.wantMissing || s.Discontinuity != (tc.wantMissing > 0) {
			t.Errorf("segment %d: Missing %d Discontinuity %v", tc.seq, s.Missing, s.Discontinuity)
		}
	}
	// An init between media segments heads the next seq: no gap, but a discontinuity.
	adder(t, w)(b.segment(KindInit, 21, t0, 0))
	if a := adder(t, w)(b.media(21, t0)); a.Missing != 0 {
		t.Errorf("media after an init: Missing %d", a.Missing)
	}
	if s, _ := w.Media(21); !s.Discontinuity {
		t.Error("media 21 after a new init is not a discontinuity")
	}
	if st := w.Stats(); st.Gaps != 2 || st.Missing != 11 {
		t.Errorf("stats: %d gaps, %d missing; want 2 and 11", st.Gaps, st.Missing)
	}
}

func TestWindowEviction(t *testing.T) {
	b := newBroadcaster(t)
	c := &clock{now: t0}
	w := newTestWindow(t, b, c, func(wc *WindowConfig) { wc.Duration = time.Minute })
	adder(t, w)(b.segment(KindInit, 0, t0, 0))
	// 90 segments of 2 s, three minutes: the clock follows the broadcaster.
	for seq := uint64(0); seq < 90; seq++ {
		adder(t, w)(b.media(seq, c.Now()))
		c.Advance(2 * time.Second)
	}
	// Now is t0+180s; the window keeps times ≥ t0+120s: seqs 60..89.
	segs := w.Segments()
	if len(segs) != 31 || segs[0].Kind != KindInit || segs[0].Seq != 0 || segs[1].Seq != 60 || segs[30].Seq != 89 {
		t.Fatalf("window holds %d segments, first media %d; want the init 0 and media 60..89", len(segs), segs[1].Seq)
	}
	if _, ok := w.Media(59); ok {
		t.Error("media 59 (older than a minute) still there")
	}
	// A new init at 90; once the media before it are gone, the old init goes too.
	adder(t, w)(b.segment(KindInit, 90, c.Now(), 0))
	adder(t, w)(b.media(90, c.Now()))
	c.Advance(59 * time.Second) // t0+239s: keeps ≥ t0+179s, the last old media (89 at t0+178s) goes
	if _, ok := w.Media(89); ok {
		t.Error("media 89 still there")
	}
	if _, ok := w.Get(KindInit, 0); ok {
		t.Error("init 0 still there with no media needing it")
	}
	if in, ok := w.InitFor(90); !ok || in.Seq != 90 {
		t.Error("init 90 is gone")
	}
	// Everything expires while nobody adds: reads evict too. The newest init stays.
	c.Advance(time.Hour)
	if _, ok := w.LiveEdge(); ok {
		t.Error("a live edge an hour after the last segment")
	}
	if st := w.Stats(); st.Media != 0 || st.Inits != 1 {
		t.Errorf("after an hour: %d media %d inits, want 0 and 1", st.Media, st.Inits)
	}
	// Replay protection outlives the window.
	s, d := b.media(90, c.Now())
	if _, err := w.Add(s, d); !errors.Is(err, ErrReplay) && !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("seq 90 again after eviction: %v", err)
	}
	adder(t, w)(b.media(91, c.Now()))
}

func TestWindowByteCap(t *testing.T) {
	b := newBroadcaster(t)
	w := newTestWindow(t, b, &clock{now: t0}, func(wc *WindowConfig) { wc.MaxBytes = 150 })
	in, inData := b.segment(KindInit, 0, t0, 0)
	mustAdd(t, w, in, inData)
	var sizes []int
	for seq := uint64(0); seq < 5; seq++ {
		s, d := b.media(seq, t0)
		sizes = append(sizes, len(d))
		mustAdd(t, w, s, d)
		if st := w.Stats(); st.Bytes > 150 {
			t.Fatalf("after media %d: %d bytes kept, cap 150", seq, st.Bytes)
		}
	}
	// Each segment is ~70 bytes: the init and the newest media segment keep their bytes.
	if s, ok := w.Media(4); !ok || s.Data == nil {
		t.Error("newest segment lost its bytes")
	}
	for seq := uint64(0); seq < 4; seq++ {
		if s, ok := w.Media(seq); !ok || s.Data != nil {
			t.Errorf("media %d: found %v with %d bytes; want the entry without bytes", seq, ok, len(s.Data))
		}
	}
	if s, ok := w.Get(KindInit, 0); !ok || s.Data == nil {
		t.Error("the init lost its bytes")
	}
	if st, want := w.Stats(), int64(sizes[4]+len(inData)); st.Bytes != want || st.Media != 5 {
		t.Errorf("stats %+v, want %d bytes", st, want)
	}
	// The playlist starts at the oldest segment it can serve; the manifest keeps every entry.
	pl, err := w.Playlist(PlaylistOptions{URI: segURI})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(pl); !strings.Contains(got, "#EXT-X-MEDIA-SEQUENCE:4\n") || strings.Contains(got, "3.m4s") ||
		!strings.Contains(got, "#EXT-X-MAP:URI=\"init-0.mp4\"") || !strings.Contains(got, "\n4.m4s\n") {
		t.Errorf("playlist with media 0-3 without bytes:\n%s", got)
	}
	if n := len(w.Manifest().Entries); n != 6 {
		t.Errorf("manifest has %d entries, want all 6", n)
	}
	// A cap below init + segment: the newest media goes before the init.
	tight := newTestWindow(t, b, &clock{now: t0}, func(wc *WindowConfig) { wc.MaxBytes = 100 })
	mustAdd(t, tight, in, inData)
	adder(t, tight)(b.media(0, t0))
	if s, _ := tight.Get(KindInit, 0); s.Data == nil {
		t.Error("tight cap: the init lost its bytes")
	}
	if st := tight.Stats(); st.Bytes != int64(len(inData)) {
		t.Errorf("tight cap: %d bytes kept, want the init's %d", st.Bytes, len(inData))
	}
	none := newTestWindow(t, b, &clock{now: t0}, func(wc *WindowConfig) { wc.MaxBytes = 0 })
	adder(t, none)(b.media(0, t0))
	if s, _ := none.Media(0); s.Data != nil {
		t.Error("MaxBytes 0 kept bytes")
	}
}

func TestWindowConcurrent(t *testing.T) {
	b := newBroadcaster(t)
	c := &clock{now: t0}
	w := newTestWindow(t, b, c, func(wc *WindowConfig) { wc.Duration = 20 * time.Second })
	const n = 200
	entries := make([]SignedEntry, n)
	data := make([][]byte, n)
	for i := range entries {
		entries[i], data[i] = b.media(uint64(i), t0.Add(time.Duration(i)*time.Second))
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				w.LiveEdge()
				w.Manifest()
				w.Media(uint64(r))
				if _, err := w.Playlist(PlaylistOptions{URI: func(e Entry) string { return SegmentName(e.Kind, e.Seq) }}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// Two writers race to add the same entries in order: each is accepted exactly once.
	var accepted sync.Map
	var wwg sync.WaitGroup
	for range 2 {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			for i := range entries {
				if _, err := w.Add(entries[i], data[i]); err == nil {
					if _, dup := accepted.LoadOrStore(i, true); dup {
						t.Errorf("entry %d accepted twice", i)
					}
				}
				c.Advance(time.Second / 2)
			}
		}()
	}
	wwg.Wait()
	close(stop)
	wg.Wait()
	if edge, ok := w.LiveEdge(); !ok || edge.Seq != n-1 {
		t.Errorf("live edge %d %v, want %d", edge.Seq, ok, n-1)
	}
}

func TestWindowAttachData(t *testing.T) {
	b := newBroadcaster(t)
	w := newTestWindow(t, b, &clock{now: t0}, nil)
	s, data := b.media(3, t0)
	mustAdd(t, w, s, nil) // a relay: the signed entry first
	if seg, _ := w.Media(3); seg.Data != nil {
		t.Fatal("bytes before any were given")
	}
	wrong := bytes.Clone(data)
	wrong[0] ^= 1
	if ok, err := w.AttachData(KindMedia, 3, wrong); ok || !errors.Is(err, ErrContentMismatch) {
		t.Errorf("other bytes: %v, %v; want ErrContentMismatch", ok, err)
	}
	if ok, err := w.AttachData(KindMedia, 3, data[:5]); ok || !errors.Is(err, ErrContentMismatch) {
		t.Errorf("short bytes: %v, %v; want ErrContentMismatch", ok, err)
	}
	if ok, err := w.AttachData(KindMedia, 4, data); ok || err != nil {
		t.Errorf("unknown seq: %v, %v; want false, nil", ok, err)
	}
	if ok, err := w.AttachData(KindInit, 3, data); ok || err != nil {
		t.Errorf("init 3 (not in the window): %v, %v; want false, nil", ok, err)
	}
	if ok, err := w.AttachData(KindMedia, 3, data); !ok || err != nil {
		t.Fatalf("the right bytes: %v, %v", ok, err)
	}
	if seg, _ := w.Media(3); !bytes.Equal(seg.Data, data) {
		t.Error("bytes not kept")
	}
	if st := w.Stats(); st.Bytes != int64(len(data)) {
		t.Errorf("%d bytes counted, want %d", st.Bytes, len(data))
	}
	if ok, _ := w.AttachData(KindMedia, 3, data); !ok {
		t.Error("attaching the same bytes again failed")
	}
	if st := w.Stats(); st.Bytes != int64(len(data)) {
		t.Errorf("attaching twice counted %d bytes, want %d", st.Bytes, len(data))
	}
	// Signed bytes whose torrent is not the signed infohash.
	e := s.Entry
	e.Seq = 4
	e.InfoHash[3] ^= 1
	bad, _ := Sign(b.priv, e)
	mustAdd(t, w, bad, nil)
	if ok, err := w.AttachData(KindMedia, 4, data); ok || !errors.Is(err, ErrInfoHashMismatch) {
		t.Errorf("wrong infohash: %v, %v; want ErrInfoHashMismatch", ok, err)
	}
}

func TestSignSegment(t *testing.T) {
	priv := testKey()
	data := []byte("media")
	got, err := SignSegment(priv, KindMedia, 9, t0, 2*time.Second, data)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustEntry(t, priv, KindMedia, 9, t0, 2*time.Second, data); got != want {
		t.Errorf("SignSegment %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		name string
		kind Kind
		dur  time.Duration
		data []byte
	}{
		{"empty", KindMedia, time.Second, nil},
		{"media without duration", KindMedia, 0, data},
		{"init with a duration", KindInit, time.Second, data},
		{"negative duration", KindMedia, -time.Second, data},
		{"duration beyond uint32 µs", KindMedia, 2 * time.Hour, data},
	} {
		if _, err := SignSegment(priv, tc.kind, 1, t0, tc.dur, tc.data); err == nil {
			t.Errorf("%s: signed", tc.name)
		}
	}
}
