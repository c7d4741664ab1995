package live

import (
	"fmt"
	"net/http"
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
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.streams) >= o.cfg.MaxStreams {
		// Ended streams make room.
		for oid, s := range o.streams {
			if s.relay == nil && s.state(o.cfg.Now()) == StateEnded {
				delete(o.streams, oid)
			}
		}
	}
	if len(o.streams) >= o.cfg.MaxStreams {
		return nil, Added{}, fail(http.StatusServiceUnavailable, ResultStreamLimit, "this gateway holds its limit of %d live streams (MaxStreams)", o.cfg.MaxStreams)
	}
	o.streams[id] = s
	o.log.Info("new live stream", "stream", id)
	return s, added, nil
}

func (o *Origin) newStream(id StreamID) (*stream, error) {
	wc := DefaultWindowConfig()
	wc.Stream, wc.Duration, wc.MaxSegmentSize, wc.MaxBytes, wc.Now = id, o.cfg.Window, o.cfg.MaxSegmentSize, o.cfg.MaxBytes, o.cfg.Now
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
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.streams) >= o.cfg.MaxStreams {
		return fmt.Errorf("%w: relaying stream %s would exceed the limit of %d live streams (MaxStreams)", ErrStreamLimit, id, o.cfg.MaxStreams)
	}
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
