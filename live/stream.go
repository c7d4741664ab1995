package live

import (
	"bytes"
	"sort"
	"sync"
	"time"
)

// stream is one stream's window and ingest bookkeeping.
type stream struct {
	w       *Window
	created time.Time
	keep    time.Duration // the window's duration

	// relay, for a stream this gateway follows from elsewhere (Origin.Follow), reports how; such
	// a stream takes no uploads and is never dropped to make room.
	relay func() RelayStatus

	mu       sync.Mutex
	bytesIn  uint64
	bytesOut uint64    // segment bytes served over HTTP
	lastAt   time.Time // when the last segment was accepted
	// restoredAt is when Restore brought the stream back: its broadcaster gets 3 target
	// durations from then to come back before the stream counts as stalled.
	restoredAt time.Time
	rejections map[string]uint64
	recent     []rate // the last media segments accepted, for the bitrate
}

type rate struct {
	size uint64
	dur  time.Duration
}

const recentSegments = 10

// restored sets the bookkeeping of a stream whose window Restore reloaded (segs, not empty) now:
// it started with the oldest segment kept and last took one with the newest, by the broadcaster's
// clock (never ahead of now), and its bitrate is that of the newest media segments.
func (s *stream) restored(segs []Segment, now time.Time) {
	last := segs[len(segs)-1]
	s.created = segs[0].Start()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restoredAt = now
	s.lastAt = last.Start().Add(last.Duration())
	if s.lastAt.After(now) {
		s.lastAt = now
	}
	s.recent = s.recent[:0]
	for _, seg := range segs {
		if seg.Kind == KindMedia {
			s.recent = append(s.recent, rate{size: seg.Size, dur: seg.Duration()})
		}
	}
	if len(s.recent) > recentSegments {
		s.recent = s.recent[len(s.recent)-recentSegments:]
	}
}

func (s *stream) hasInitFor(seq uint64) bool {
	_, ok := s.w.InitFor(seq)
	return ok
}

// Stream states.
const (
	StateLive    = "live"    // a segment came within 3 target durations (Window.TargetDuration)
	StateStalled = "stalled" // none for longer, but the window still holds media
	StateEnded   = "ended"   // the broadcaster ended it, or nothing came for the window's whole duration
)

func (s *stream) state(now time.Time) string {
	s.mu.Lock()
	last, restored := s.lastAt, s.restoredAt
	s.mu.Unlock()
	if _, ok := s.w.Ended(); ok {
		return StateEnded
	}
	if _, ok := s.w.LiveEdge(); !ok {
		if now.Sub(last) > s.keep {
			return StateEnded
		}
		return StateStalled
	}
	if restored.After(last) {
		last = restored // a restart is no news of the broadcaster: give it time to come back
	}
	if now.Sub(last) > 3*s.w.TargetDuration() {
		return StateStalled
	}
	return StateLive
}

// StreamStatus is the JSON of GET /api/live/{stream}.
type StreamStatus struct {
	Stream StreamID `json:"stream"`
	State  string   `json:"state"`
	// EdgeSeq is the newest media segment's seq (absent without one); NextSeq the seq a
	// broadcaster (re)starting should use next.
	EdgeSeq *uint64      `json:"edge_seq,omitempty"`
	NextSeq uint64       `json:"next_seq"`
	Window  WindowStatus `json:"window"`
	// BytesIn is the segment bytes taken in: uploaded, or fetched by a relay; BytesOutHTTP the
	// segment bytes served over HTTP (players and webseeds; relays fetch over BitTorrent).
	BytesIn      uint64 `json:"bytes_in"`
	BytesOutHTTP uint64 `json:"bytes_out_http"`
	// BitrateBPS is the ingest rate in bits per second of media over the last media segments.
	BitrateBPS float64           `json:"bitrate_bps"`
	Accepted   uint64            `json:"accepted"`
	Rejected   uint64            `json:"rejected"`
	Rejections map[string]uint64 `json:"rejections"`
	Gaps       uint64            `json:"gaps"`
	Missing    uint64            `json:"missing"`
	// StartedAt is when this gateway took the stream's first segment (after a restart, the
	// time of the oldest segment it kept).
	StartedAt     time.Time  `json:"started_at"`
	LastSegmentAt *time.Time `json:"last_segment_at,omitempty"`
	// BitTorrentPort is where this gateway's BitTorrent client listens (0: not known); with the
	// host of the URL this status was fetched from, it is where relays fetch segments.
	BitTorrentPort int `json:"bittorrent_port,omitempty"`
	// BrowserPeers is how many browsers are in the stream's swarm on this gateway's tracker.
	BrowserPeers int `json:"browser_peers"`
	// Relay is set when this gateway relays the stream from elsewhere.
	Relay       *RelayStatus `json:"relay,omitempty"`
	PlaylistURL string       `json:"playlist_url"`
	ManifestURL string       `json:"manifest_url"`
	WatchURL    string       `json:"watch_url"`
}

// WindowStatus describes what a stream's window holds now.
type WindowStatus struct {
	FirstSeq *uint64 `json:"first_seq,omitempty"`
	LastSeq  *uint64 `json:"last_seq,omitempty"`
	Seconds  float64 `json:"seconds"`
	Media    int     `json:"media"`
	Inits    int     `json:"inits"`
	Bytes    int64   `json:"bytes"`
}

// Status is a stream's state; base prefixes its URLs (e.g. "https://tv.example.org").
func (o *Origin) Status(id StreamID, base string) (StreamStatus, bool) {
	s := o.stream(id)
	if s == nil {
		return StreamStatus{}, false
	}
	st := s.status(id, base, o.cfg.Now())
	if o.cfg.BitTorrentPort != nil {
		st.BitTorrentPort = o.cfg.BitTorrentPort()
	}
	if o.cfg.BrowserPeers != nil {
		st.BrowserPeers = o.cfg.BrowserPeers(id)
	}
	return st, true
}

// Statuses is every stream's state, by stream id.
func (o *Origin) Statuses(base string) []StreamStatus {
	o.mu.Lock()
	ids := make([]StreamID, 0, len(o.streams))
	for id := range o.streams {
		ids = append(ids, id)
	}
	o.mu.Unlock()
	sort.Slice(ids, func(i, j int) bool { return bytes.Compare(ids[i][:], ids[j][:]) < 0 })
	out := []StreamStatus{}
	for _, id := range ids {
		if st, ok := o.Status(id, base); ok {
			out = append(out, st)
		}
	}
	return out
}

func (s *stream) status(id StreamID, base string, now time.Time) StreamStatus {
	segs := s.w.Segments()
	ws := s.w.Stats()
	u := base + "/live/" + id.String()
	st := StreamStatus{
		Stream: id, State: s.state(now), Accepted: ws.Accepted,
		Gaps: ws.Gaps, Missing: ws.Missing, StartedAt: s.created.UTC(),
		Window:      WindowStatus{Media: ws.Media, Inits: ws.Inits, Bytes: ws.Bytes},
		PlaylistURL: u + "/index.m3u8", ManifestURL: u + "/manifest.json", WatchURL: u,
	}
	var first, last *Segment
	for i := range segs {
		if segs[i].Kind == KindMedia {
			if first == nil {
				first = &segs[i]
			}
			last = &segs[i]
		}
		st.NextSeq = max(st.NextSeq, segs[i].Seq+1)
	}
	if first != nil {
		fs, ls := first.Seq, last.Seq
		st.Window.FirstSeq, st.Window.LastSeq, st.EdgeSeq = &fs, &ls, &ls
		st.Window.Seconds = last.Start().Add(last.Duration()).Sub(first.Start()).Seconds()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.BytesIn, st.BytesOutHTTP = s.bytesIn, s.bytesOut
	if !s.lastAt.IsZero() {
		t := s.lastAt.UTC()
		st.LastSegmentAt = &t
	}
	var size uint64
	var dur time.Duration
	for _, r := range s.recent {
		size, dur = size+r.size, dur+r.dur
	}
	if dur > 0 {
		st.BitrateBPS = float64(size*8) / dur.Seconds()
	}
	st.Rejections = make(map[string]uint64, len(s.rejections))
	for k, v := range s.rejections {
		st.Rejections[k] = v
		st.Rejected += v
	}
	if s.relay != nil {
		rs := s.relay()
		st.Relay = &rs
		for k, v := range rs.Rejected {
			st.Rejections[k] += v
			st.Rejected += v
		}
	}
	return st
}
