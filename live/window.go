package live

import (
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Window defaults.
const (
	DefaultWindowDuration = 30 * time.Minute
	DefaultMaxSegmentSize = 32 << 20
	DefaultMaxBytes       = 256 << 20
	DefaultFutureSkew     = 30 * time.Second
)

// WindowConfig sets up a Window. Start from DefaultWindowConfig.
type WindowConfig struct {
	// Stream is the only stream the window accepts entries of. Required.
	Stream StreamID
	// Duration is how far back the window keeps media segments, by their TimeMS. Media entries
	// older than that are refused and evicted. The init segment heading the oldest kept media
	// segment stays, however old.
	Duration time.Duration
	// MaxSegmentSize refuses larger segments.
	MaxSegmentSize uint64
	// MaxBytes caps the segment bytes the window keeps (0 keeps none: entries only). Over it,
	// the oldest segments lose their bytes first (the newest init last); entries stay.
	MaxBytes int64
	// FutureSkew is how far ahead of Now an entry's time may be: the broadcaster's clock and
	// ours disagree a little, never by minutes.
	FutureSkew time.Duration
	// Now is the clock (nil: time.Now); tests inject one.
	Now func() time.Time
	// Dir, if set, keeps the window on disk in this folder (made when first needed), so that it
	// survives a restart: each segment whose bytes the window keeps, as its bytes and its record
	// (the signed entry), and the broadcaster's end. Add writes a segment there before it is
	// accepted; a segment leaves the disk when it leaves the window or loses its bytes under
	// MaxBytes, so the disk holds what the memory holds. Load reads it back. See store.go.
	Dir string
	// Log gets what goes wrong with Dir (nil discards): the window then goes on from memory.
	Log *slog.Logger
}

// DefaultWindowConfig returns the defaults (Stream still to be set): 30 minutes, segments of up
// to 32 MiB, 256 MiB kept, 30 s of clock skew.
func DefaultWindowConfig() WindowConfig {
	return WindowConfig{
		Duration:       DefaultWindowDuration,
		MaxSegmentSize: DefaultMaxSegmentSize,
		MaxBytes:       DefaultMaxBytes,
		FutureSkew:     DefaultFutureSkew,
	}
}

// Validate reports every unusable field, each with the reason.
func (c WindowConfig) Validate() error {
	var errs configErrors
	if c.Stream.IsZero() {
		errs.add("Stream", "must be set")
	}
	errs.duration("Duration", c.Duration)
	if c.MaxSegmentSize == 0 {
		errs.add("MaxSegmentSize", "must be > 0")
	}
	if c.MaxBytes < 0 {
		errs.add("MaxBytes", "must be >= 0 (0 keeps no bytes), got %d", c.MaxBytes)
	}
	errs.duration("FutureSkew", c.FutureSkew)
	return errs.err()
}

// Segment is an entry the window accepted, with its bytes if it keeps them.
type Segment struct {
	SignedEntry
	// Data is the segment's bytes, nil if they were not given or were dropped under MaxBytes.
	// Callers must not modify it.
	Data []byte
	// Missing is, for a media segment, how many media sequence numbers were skipped right before
	// it (a gap: dropped segments). 0 for the first segment the window saw.
	Missing uint64
	// Discontinuity marks a media segment after a gap or after a new init segment: the playlist
	// puts #EXT-X-DISCONTINUITY before it.
	Discontinuity bool
	// discBefore is how many media segments before this one were discontinuities, ever.
	discBefore uint64
}

// Added is what Window.Add reports about an accepted entry.
type Added struct {
	// Missing is how many media sequence numbers were skipped right before this one (a gap).
	Missing uint64
	// Evicted is how many entries this Add pushed out of the window.
	Evicted int
}

// WindowStats counts what a window has seen. "Ever" is since the window was made; a window
// filled by Load counts the segments it reloaded as accepted, and their gaps.
type WindowStats struct {
	Media, Inits  int    // entries in the window now
	Bytes         int64  // segment bytes kept now
	Accepted      uint64 // entries accepted, ever
	Rejected      uint64 // entries refused, ever
	Gaps, Missing uint64 // gaps seen, ever, and the media sequence numbers they skipped
}

// Window is the rolling window of a stream's accepted entries: the last Duration of media
// segments and the init segments they need. It is safe for concurrent use.
type Window struct {
	cfg   WindowConfig
	log   *slog.Logger
	store *windowStore // nil: memory only

	// addMu makes Add and AttachData one at a time, so that a segment is written to disk (outside
	// mu: readers do not wait for the disk) between the checks and the accepting of the same state.
	addMu    sync.Mutex
	mu       sync.Mutex
	inits    []*Segment // by Seq
	media    []*Segment // by Seq
	bytes    int64
	last     Entry // the last accepted entry, valid if accepted > 0
	end      *End  // the broadcaster ended the stream (lifted by a later segment)
	lastSeq  uint64
	anyMedia bool // lastSeq is the last accepted media seq
	newInit  bool // an init was accepted after the last media segment
	target   int  // max rounded EXTINF seconds of any accepted media segment, ever
	// evictedDisc counts discontinuities that left the window, for EXT-X-DISCONTINUITY-SEQUENCE;
	// discTotal counts them all.
	evictedDisc, discTotal uint64
	stats                  WindowStats
}

// NewWindow makes an empty window for cfg.Stream.
func NewWindow(cfg WindowConfig) (*Window, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Window{cfg: cfg, log: cfg.Log}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Dir != "" {
		w.store = &windowStore{dir: cfg.Dir, log: w.log}
	}
	return w, nil
}

// Stream is the stream the window holds.
func (w *Window) Stream() StreamID { return w.cfg.Stream }

// Add accepts a signed entry, and its bytes if data is not nil, or says why not with a
// *RejectError wrapping one of: ErrWrongStream, ErrMalformed, ErrBadSignature (not signed by the
// stream's key), ErrTooLarge, ErrContentMismatch, ErrInfoHashMismatch (data is not the segment),
// ErrTooOld (a media segment older than the window), ErrFuture (beyond FutureSkew), ErrReplay
// (already accepted) or ErrOutOfOrder (behind the last accepted entry). Entries must come in
// order: by Seq, an init segment before the media segment of the same Seq. Gaps in Seq are
// accepted and reported in Added.Missing. The window keeps data (it does not copy it).
func (w *Window) Add(s SignedEntry, data []byte) (Added, error) {
	// Everything that needs no window state, outside the lock: signatures and hashes take time.
	err := w.check(s, data)
	w.addMu.Lock()
	defer w.addMu.Unlock()
	w.mu.Lock()
	if err == nil {
		err = w.checkOrder(s.Entry)
	}
	if err != nil {
		w.stats.Rejected++
		w.mu.Unlock()
		return Added{}, err
	}
	seg, target := w.next(s)
	w.mu.Unlock()
	// Only Add and AttachData (addMu) change what next read: seg and target still hold below.
	if data != nil && w.cfg.MaxBytes > 0 {
		seg.Data = data
		w.persist(seg, target)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.end != nil && s.Seq > w.end.LastSeq {
		w.end = nil // the broadcaster started again
		if w.store != nil {
			w.store.removeEnd()
		}
	}
	w.bytes += int64(len(seg.Data))
	var added Added
	switch s.Kind {
	case KindInit:
		w.inits = append(w.inits, seg)
		w.newInit = true
	case KindMedia:
		if seg.Missing > 0 {
			w.stats.Gaps++
			w.stats.Missing += seg.Missing
		}
		if seg.Discontinuity {
			w.discTotal++
		}
		w.media = append(w.media, seg)
		w.lastSeq, w.anyMedia, w.newInit = s.Seq, true, false
		added.Missing = seg.Missing
	}
	w.target = target
	w.last = s.Entry
	w.stats.Accepted++
	added.Evicted = w.evict()
	w.trimBytes()
	return added, nil
}

// next is the segment s makes in the window as it stands (without its bytes), and the window's
// target duration once it is in.
func (w *Window) next(s SignedEntry) (*Segment, int) {
	seg := &Segment{SignedEntry: s}
	target := w.target
	if s.Kind == KindMedia {
		if w.anyMedia && s.Seq > w.lastSeq+1 {
			seg.Missing = s.Seq - w.lastSeq - 1
		}
		seg.Discontinuity = w.anyMedia && (seg.Missing > 0 || w.newInit)
		seg.discBefore = w.discTotal
		target = max(target, roundedSeconds(s.DurationUS))
	}
	return seg, target
}

// persist writes seg (with its bytes) to disk, if the window keeps it there. A failure is logged
// and the window goes on from memory: the segment will not survive a restart.
func (w *Window) persist(seg *Segment, target int) {
	if w.store == nil {
		return
	}
	rec := segmentRecord{
		Version: recordVersion, Entry: seg.SignedEntry, Missing: seg.Missing,
		Discontinuity: seg.Discontinuity, DiscBefore: seg.discBefore, Target: target,
	}
	if err := w.store.put(rec, seg.Data); err != nil {
		w.log.Warn("keeping a live segment on disk failed: it is served from memory, but will not survive a restart",
			"stream", w.cfg.Stream, "kind", seg.Kind, "seq", seg.Seq, "err", err)
	}
}

// forget takes a segment leaving the window, or losing its bytes, off the disk.
func (w *Window) forget(s *Segment) {
	if w.store != nil && s.Data != nil {
		w.store.remove(s.Kind, s.Seq)
	}
}

func (w *Window) check(s SignedEntry, data []byte) error {
	if err := Verify(w.cfg.Stream, s); err != nil {
		return err
	}
	if s.Size > w.cfg.MaxSegmentSize {
		return s.reject(ErrTooLarge, "%d bytes, the limit is %d", s.Size, w.cfg.MaxSegmentSize)
	}
	now := w.cfg.Now()
	start := s.Start()
	if s.Kind == KindMedia && start.Before(now.Add(-w.cfg.Duration)) {
		return s.reject(ErrTooOld, "its time %s is %v before now, the window keeps %v",
			start.Format(time.RFC3339Nano), now.Sub(start).Round(time.Millisecond), w.cfg.Duration)
	}
	if start.After(now.Add(w.cfg.FutureSkew)) {
		return s.reject(ErrFuture, "its time %s is %v ahead of now, more than the allowed skew of %v",
			start.Format(time.RFC3339Nano), start.Sub(now).Round(time.Millisecond), w.cfg.FutureSkew)
	}
	if data != nil {
		return checkData(s.Entry, data)
	}
	return nil
}

// checkData checks data against everything e says of it, the infohash included.
func checkData(e Entry, data []byte) error {
	if err := VerifySegment(e, data); err != nil {
		return err
	}
	ih, err := SegmentInfoHash(e.Stream, e.Kind, e.Seq, data)
	if err != nil {
		return e.reject(ErrMalformed, "%v", err)
	}
	if ih != e.InfoHash {
		return e.reject(ErrInfoHashMismatch, "the bytes make torrent %s, the entry says %s", ih.HexString(), e.InfoHash.HexString())
	}
	return nil
}

func (w *Window) checkOrder(e Entry) error {
	if w.stats.Accepted == 0 || before(w.last, e) {
		return nil
	}
	if w.last.Seq == e.Seq && w.last.Kind == e.Kind {
		return e.reject(ErrReplay, "it is the last accepted entry")
	}
	if _, ok := w.get(e.Kind, e.Seq); ok {
		return e.reject(ErrReplay, "it was already accepted")
	}
	return e.reject(ErrOutOfOrder, "the last accepted entry is %s segment %d", w.last.Kind, w.last.Seq)
}

// roundedSeconds is the EXTINF duration as the playlist prints it (milliseconds), rounded to the
// nearest second the way RFC 8216 compares it with EXT-X-TARGETDURATION.
func roundedSeconds(us uint32) int {
	ms := (int64(us) + 500) / 1000
	return int((ms + 500) / 1000)
}

// evict drops media segments older than the window and the init segments no kept media needs.
func (w *Window) evict() int {
	cutoff := w.cfg.Now().Add(-w.cfg.Duration)
	n := 0
	for len(w.media) > 0 && w.media[0].Start().Before(cutoff) {
		if w.media[0].Discontinuity {
			w.evictedDisc++
		}
		w.forget(w.media[0])
		w.bytes -= int64(len(w.media[0].Data))
		w.media[0] = nil
		w.media = w.media[1:]
		n++
	}
	// Keep the init heading the oldest media segment (or the newest init if there is no media).
	for len(w.inits) > 1 && (len(w.media) == 0 || w.inits[1].Seq <= w.media[0].Seq) {
		w.forget(w.inits[0])
		w.bytes -= int64(len(w.inits[0].Data))
		w.inits[0] = nil
		w.inits = w.inits[1:]
		n++
	}
	return n
}

// trimBytes drops kept bytes until under MaxBytes: oldest first in stream order, the newest init
// (which every new viewer needs) last.
func (w *Window) trimBytes() {
	if w.bytes <= w.cfg.MaxBytes {
		return
	}
	var current *Segment
	if len(w.inits) > 0 {
		current = w.inits[len(w.inits)-1]
	}
	i, m := 0, 0
	for w.bytes > w.cfg.MaxBytes && (i < len(w.inits) || m < len(w.media)) {
		var s *Segment
		if m == len(w.media) || (i < len(w.inits) && before(w.inits[i].Entry, w.media[m].Entry)) {
			s, i = w.inits[i], i+1
			if s == current {
				continue
			}
		} else {
			s, m = w.media[m], m+1
		}
		w.forget(s)
		w.bytes -= int64(len(s.Data))
		s.Data = nil
	}
	if w.bytes > w.cfg.MaxBytes && current != nil {
		w.forget(current)
		w.bytes -= int64(len(current.Data))
		current.Data = nil
	}
}

// AttachData stores the bytes of an entry the window accepted without them (a relay learns the
// signed entry first, then fetches the segment by its infohash). data must match the entry: size,
// SHA-256 and infohash, else ErrContentMismatch or ErrInfoHashMismatch. It reports false if the
// entry is not (or no longer) in the window, or the window keeps no bytes (MaxBytes 0).
func (w *Window) AttachData(kind Kind, seq uint64, data []byte) (bool, error) {
	w.addMu.Lock()
	defer w.addMu.Unlock()
	w.mu.Lock()
	s, ok := w.get(kind, seq)
	var e Entry
	if ok {
		e = s.Entry
	}
	w.mu.Unlock()
	if !ok {
		return false, nil
	}
	if err := checkData(e, data); err != nil {
		return false, err
	}
	w.mu.Lock()
	w.evict()
	s, ok = w.get(kind, seq)
	if !ok || w.cfg.MaxBytes == 0 {
		w.mu.Unlock()
		return false, nil
	}
	if s.Data != nil {
		w.mu.Unlock()
		return true, nil
	}
	seg, target := *s, w.target
	w.mu.Unlock()
	seg.Data = data
	w.persist(&seg, target)

	w.mu.Lock()
	defer w.mu.Unlock()
	w.evict()
	s, ok = w.get(kind, seq)
	if !ok {
		// It left the window meanwhile (by time): off the disk again.
		if w.store != nil {
			w.store.remove(kind, seq)
		}
		return false, nil
	}
	s.Data = data
	w.bytes += int64(len(data))
	w.trimBytes()
	return true, nil
}

// lastEntry is the last entry the window accepted (or reloaded), if any.
func (w *Window) lastEntry() (Entry, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last, w.stats.Accepted > 0
}

func (w *Window) get(kind Kind, seq uint64) (*Segment, bool) {
	list := w.media
	if kind == KindInit {
		list = w.inits
	}
	i := sort.Search(len(list), func(i int) bool { return list[i].Seq >= seq })
	if i < len(list) && list[i].Seq == seq {
		return list[i], true
	}
	return nil, false
}

// Get looks up a segment in the window by kind and sequence number.
func (w *Window) Get(kind Kind, seq uint64) (Segment, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.evict()
	s, ok := w.get(kind, seq)
	if !ok {
		return Segment{}, false
	}
	return *s, true
}

// Media looks up a media segment by sequence number.
func (w *Window) Media(seq uint64) (Segment, bool) { return w.Get(KindMedia, seq) }

// InitFor is the init segment heading media segment seq: the last init with Seq ≤ seq.
func (w *Window) InitFor(seq uint64) (Segment, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.evict()
	if s := w.initFor(seq); s != nil {
		return *s, true
	}
	return Segment{}, false
}

func (w *Window) initFor(seq uint64) *Segment {
	i := sort.Search(len(w.inits), func(i int) bool { return w.inits[i].Seq > seq })
	if i == 0 {
		return nil
	}
	return w.inits[i-1]
}

// LiveEdge is the newest media segment, if the window has any.
func (w *Window) LiveEdge() (Segment, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.evict()
	if len(w.media) == 0 {
		return Segment{}, false
	}
	return *w.media[len(w.media)-1], true
}

// Segments is every segment in the window in stream order (by Seq, each init before the media
// segment of its Seq).
func (w *Window) Segments() []Segment {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.evict()
	out := make([]Segment, 0, len(w.inits)+len(w.media))
	i, m := 0, 0
	for i < len(w.inits) || m < len(w.media) {
		if m == len(w.media) || (i < len(w.inits) && before(w.inits[i].Entry, w.media[m].Entry)) {
			out = append(out, *w.inits[i])
			i++
		} else {
			out = append(out, *w.media[m])
			m++
		}
	}
	return out
}

// Manifest is the window's signed entries, for /live/{stream}/manifest.json.
func (w *Window) Manifest() Manifest {
	segs := w.Segments()
	m := Manifest{Version: ManifestVersion, Stream: w.cfg.Stream, Entries: make([]SignedEntry, len(segs))}
	for i, s := range segs {
		m.Entries[i] = s.SignedEntry
	}
	if e, ok := w.Ended(); ok {
		m.End = &e
	}
	return m
}

// TargetDuration is the playlist's #EXT-X-TARGETDURATION: the longest rounded EXTINF the
// window ever accepted, at least 1 s.
func (w *Window) TargetDuration() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.Duration(max(w.target, 1)) * time.Second
}

// Stats counts what the window holds and has seen.
func (w *Window) Stats() WindowStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.evict()
	st := w.stats
	st.Media, st.Inits, st.Bytes = len(w.media), len(w.inits), w.bytes
	return st
}
