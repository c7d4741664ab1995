package live

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// The registry: the streams an Origin holds, made by their first accepted upload (or by
// Follow, for a stream relayed from elsewhere), within MaxStreams.

func (o *Origin) stream(id StreamID) *stream {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.streams[id]
}

// Streams is the ids of the streams held now (live, stalled or ended), in no order.
func (o *Origin) Streams() []StreamID {
	o.mu.Lock()
	defer o.mu.Unlock()
	ids := make([]StreamID, 0, len(o.streams))
	for id := range o.streams {
		ids = append(ids, id)
	}
	return ids
}

// add puts the entry into its stream's window. A stream is made by its first accepted entry
// (a refused one takes no slot), within MaxStreams.
func (o *Origin) add(id StreamID, se SignedEntry, data []byte) (*stream, Added, error) {
	if s := o.stream(id); s != nil {
		added, err := s.w.Add(se, data)
		if err != nil {
			return nil, Added{}, rejected(err)
		}
		return s, added, nil
	}
	// New streams one at a time, so that two first uploads make one stream.
	o.createMu.Lock()
	defer o.createMu.Unlock()
	if s := o.stream(id); s != nil {
		added, err := s.w.Add(se, data)
		if err != nil {
			return nil, Added{}, rejected(err)
		}
		return s, added, nil
	}
	s, err := o.newStream(id)
	if err != nil {
		return nil, Added{}, err
	}
	added, err := s.w.Add(se, data)
	if err != nil {
		return nil, Added{}, rejected(err)
	}
	if !o.makeRoom() {
		s.w.discard()
		return nil, Added{}, fail(http.StatusServiceUnavailable, ResultStreamLimit, "this gateway holds its limit of %d live streams (MaxStreams)", o.cfg.MaxStreams)
	}
	o.mu.Lock()
	o.streams[id] = s
	o.mu.Unlock()
	o.log.Info("new live stream", "stream", id)
	return s, added, nil
}

// makeRoom makes room for one more stream, if the origin holds MaxStreams, by dropping the
// ended ones (not the followed ones), from the disk too. Call it holding createMu.
func (o *Origin) makeRoom() bool {
	o.mu.Lock()
	var dropped []*stream
	if len(o.streams) >= o.cfg.MaxStreams {
		for oid, s := range o.streams {
			if s.relay == nil && s.state(o.cfg.Now()) == StateEnded {
				delete(o.streams, oid)
				dropped = append(dropped, s)
			}
		}
	}
	ok := len(o.streams) < o.cfg.MaxStreams
	o.mu.Unlock()
	for _, s := range dropped {
		s.w.discard()
		o.log.Info("dropped an ended live stream to make room", "stream", s.w.Stream())
	}
	return ok
}

func (o *Origin) newStream(id StreamID) (*stream, error) {
	wc := DefaultWindowConfig()
	wc.Stream, wc.Duration, wc.MaxSegmentSize, wc.MaxBytes, wc.Now = id, o.cfg.Window, o.cfg.MaxSegmentSize, o.cfg.MaxBytes, o.cfg.Now
	if o.cfg.Dir != "" {
		wc.Dir = filepath.Join(o.cfg.Dir, id.String())
	}
	wc.Log = o.log
	w, err := NewWindow(wc)
	if err != nil {
		return nil, err
	}
	return &stream{w: w, created: o.cfg.Now(), keep: o.cfg.Window, rejections: map[string]uint64{}}, nil
}

// accepted does the bookkeeping of a segment now in s's window.
func (o *Origin) accepted(id StreamID, s *stream, se SignedEntry, data []byte) {
	s.mu.Lock()
	s.bytesIn += uint64(len(data))
	s.lastAt = o.cfg.Now()
	if se.Kind == KindMedia {
		s.recent = append(s.recent, rate{size: se.Size, dur: se.Duration()})
		if len(s.recent) > recentSegments {
			s.recent = s.recent[1:]
		}
	}
	s.mu.Unlock()
	if o.cfg.OnSegment != nil {
		o.cfg.OnSegment(id, Segment{SignedEntry: se, Data: data})
	}
}

// segment looks up a segment in a stream's window.
func (o *Origin) segment(id StreamID, kind Kind, seq uint64) (Segment, bool) {
	s := o.stream(id)
	if s == nil {
		return Segment{}, false
	}
	return s.w.Get(kind, seq)
}

// Follow makes an empty stream that this gateway relays from elsewhere: it takes no uploads,
// only AddRelayed, and its state reports status(). It fails if the stream is here already or the
// gateway holds its limit of streams (ErrStreamExists, ErrStreamLimit).
func (o *Origin) Follow(id StreamID, status func() RelayStatus) error {
	o.createMu.Lock()
	defer o.createMu.Unlock()
	if o.stream(id) != nil {
		return fmt.Errorf("%w: %s", ErrStreamExists, id)
	}
	s, err := o.newStream(id)
	if err != nil {
		return err
	}
	s.relay = status
	if !o.makeRoom() {
		return fmt.Errorf("%w: relaying stream %s would exceed the limit of %d live streams (MaxStreams)", ErrStreamLimit, id, o.cfg.MaxStreams)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.streams[id] = s
	return nil
}

// AddRelayed puts a segment fetched from elsewhere into a followed stream's window, under the
// same checks as an upload (signature, order, freshness, bytes against the entry). The error is
// a *RejectError when the window refused it.
func (o *Origin) AddRelayed(id StreamID, se SignedEntry, data []byte) (Added, error) {
	s := o.stream(id)
	if s == nil || s.relay == nil {
		return Added{}, fmt.Errorf("%w: %s", ErrNotFollowed, id)
	}
	added, err := s.w.Add(se, data)
	if err != nil {
		return Added{}, err
	}
	o.accepted(id, s, se, data)
	return added, nil
}

// EndRelayed ends a followed stream with its broadcaster's End, as read from a source.
func (o *Origin) EndRelayed(id StreamID, e End) error {
	s := o.stream(id)
	if s == nil || s.relay == nil {
		return fmt.Errorf("%w: %s", ErrNotFollowed, id)
	}
	return s.w.End(e)
}

// Restore brings back the streams kept in OriginConfig.Dir (one folder per stream id) after a
// restart, each window as Window.Load reads it: every entry's signature is checked with the
// stream's key and every segment's bytes against its entry, and what fails is deleted with a log
// line (a folder that cannot be read at all is left alone, logged). Call it once, before serving and after Follow for the streams this gateway relays: those
// get their windows back as they were (their relays go on from the newest segment kept); the
// others come back as this origin's own, taking uploads again, the most recently active first
// within MaxStreams. A stream with no media segment left in its window, or over MaxStreams, is
// deleted; a folder not named by a stream id is left alone. OnSegment is called for the newest
// PlaylistSegments media segments of each stream (and the init segments heading them), which the
// gateway seeds again. Without a Dir, Restore does nothing.
func (o *Origin) Restore() error {
	if o.cfg.Dir == "" {
		return nil
	}
	o.createMu.Lock()
	defer o.createMu.Unlock()
	if err := os.MkdirAll(o.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("live: %w", err)
	}
	ents, err := os.ReadDir(o.cfg.Dir)
	if err != nil {
		return fmt.Errorf("live: %w", err)
	}
	type found struct {
		id   StreamID
		s    *stream
		segs []Segment
		edge time.Time // the newest segment's end
	}
	var own []found
	for _, e := range ents {
		id, err := ParseStreamID(e.Name())
		if !e.IsDir() || err != nil {
			o.log.Warn("left alone in the live folder: not a stream's folder", "path", filepath.Join(o.cfg.Dir, e.Name()))
			continue
		}
		s := o.stream(id)
		followed := s != nil
		if !followed {
			if s, err = o.newStream(id); err != nil {
				return err
			}
		}
		n, err := s.w.Load()
		if err != nil {
			// Left as it is: an unreadable folder is the operator's to look at, not to delete.
			o.log.Warn("a live stream kept on disk cannot be read; it is left alone", "stream", id, "err", err)
			continue
		}
		segs := s.w.Segments()
		edge, ok := s.w.LiveEdge()
		if !ok && !followed {
			s.w.discard()
			o.log.Info("dropped a live stream kept on disk: no media segment of it is left in its window", "stream", id)
			continue
		}
		if ok {
			s.restored(segs, o.cfg.Now())
			o.log.Info("live stream restored from disk", "stream", id, "segments", n, "first_seq", firstMediaSeq(segs), "edge_seq", edge.Seq, "ended", s.state(o.cfg.Now()) == StateEnded, "relayed", followed)
		}
		if followed {
			o.reseed(id, segs)
		} else {
			own = append(own, found{id, s, segs, edge.Start().Add(edge.Duration())})
		}
	}
	sort.Slice(own, func(i, j int) bool { return own[i].edge.After(own[j].edge) })
	o.mu.Lock()
	room := o.cfg.MaxStreams - len(o.streams)
	var kept, over []found
	for i, f := range own {
		if i >= room {
			over = append(over, f)
			continue
		}
		o.streams[f.id] = f.s
		kept = append(kept, f)
	}
	o.mu.Unlock()
	for _, f := range kept {
		o.reseed(f.id, f.segs)
	}
	for _, f := range over {
		f.s.w.discard()
		o.log.Warn("dropped a live stream kept on disk: the gateway holds its limit of streams (MaxStreams)", "stream", f.id, "max_streams", o.cfg.MaxStreams)
	}
	return nil
}

// reseed hands the newest PlaylistSegments media segments of a restored window (and the init
// segments heading them) to OnSegment: what players and relays ask for next.
func (o *Origin) reseed(id StreamID, segs []Segment) {
	if o.cfg.OnSegment == nil {
		return
	}
	from, media := 0, 0
	for i := len(segs) - 1; i >= 0; i-- {
		if segs[i].Kind == KindMedia {
			if media == o.cfg.PlaylistSegments {
				break
			}
			media++
			from = i
		}
	}
	seed := segs[from:]
	for i := from - 1; i >= 0; i-- { // the init heading the first of them
		if segs[i].Kind == KindInit {
			seed = append([]Segment{segs[i]}, seed...)
			break
		}
	}
	for _, seg := range seed {
		if seg.Data != nil {
			o.cfg.OnSegment(id, seg)
		}
	}
}

func firstMediaSeq(segs []Segment) uint64 {
	for _, s := range segs {
		if s.Kind == KindMedia {
			return s.Seq
		}
	}
	return 0
}
