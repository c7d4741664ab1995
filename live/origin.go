package live

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// EntryHeader carries the signed entry of an uploaded segment: its JSON form (see SignedEntry's
// MarshalJSON), base64url-encoded (padding optional).
const EntryHeader = "X-Swarmgate-Entry"

// Origin defaults.
const (
	DefaultMaxStreams       = 10
	DefaultPlaylistSegments = 30
)

// Results of an upload, as counted by Origin.Counts (the metric's result label).
const (
	ResultAccepted         = "accepted"
	ResultUnauthorized     = "unauthorized"
	ResultIngestOff        = "ingest_off"
	ResultMalformed        = "malformed"
	ResultTooLarge         = "too_large"
	ResultBadSignature     = "bad_signature"
	ResultWrongStream      = "wrong_stream"
	ResultContentMismatch  = "content_mismatch"
	ResultInfoHashMismatch = "infohash_mismatch"
	ResultReplay           = "replay"
	ResultOutOfOrder       = "out_of_order"
	ResultTooOld           = "too_old"
	ResultFuture           = "future"
	ResultStreamLimit      = "stream_limit"
	ResultRelayedStream    = "relayed_stream"
	ResultMissingInit      = "missing_init"
)

// Results lists every result label, so that a metric can report zeros.
var Results = []string{
	ResultAccepted, ResultUnauthorized, ResultIngestOff, ResultMalformed, ResultTooLarge,
	ResultBadSignature, ResultWrongStream, ResultContentMismatch, ResultInfoHashMismatch,
	ResultReplay, ResultOutOfOrder, ResultTooOld, ResultFuture, ResultStreamLimit, ResultRelayedStream, ResultMissingInit,
}

// OriginConfig sets up an Origin. Zero values take the defaults.
type OriginConfig struct {
	// IngestToken must come as "Authorization: Bearer <token>" with every upload. Empty turns
	// ingest off: uploads answer 403.
	IngestToken string
	// Window is how far back each stream's window keeps media segments (default 30 min).
	Window time.Duration
	// MaxStreams bounds the streams held at once (default 10); a stream that ended (its window
	// emptied) makes room for a new one.
	MaxStreams int
	// MaxSegmentSize refuses larger uploads with 413 (default 32 MiB).
	MaxSegmentSize uint64
	// MaxBytes caps the segment bytes each stream keeps (default 256 MiB).
	MaxBytes int64
	// PlaylistSegments is how many of the newest media segments index.m3u8 lists (default 30).
	PlaylistSegments int
	// OnSegment, if set, is called with each segment a stream accepted (uploaded or relayed),
	// its bytes included, after it is in the window; the gateway seeds it over BitTorrent.
	OnSegment func(StreamID, Segment)
	// BitTorrentPort, if set, is the port this gateway's BitTorrent client listens on; stream
	// states report it so that relays know where to fetch segments.
	BitTorrentPort func() int
	// BrowserPeers, if set, is how many browsers are in a stream's swarm on this gateway's
	// tracker now.
	BrowserPeers func(StreamID) int
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log *slog.Logger
}

// Origin is a gateway's live origin: it takes signed segments from broadcasters and serves each
// stream's playlist, segments and signed manifest. It never holds a private key: each upload is
// checked against the stream id in its URL, which is the broadcaster's public key.
//
// Routes, relative to where it is mounted (paths start with /live/ and /api/live):
//
//	PUT  /live/{stream}/init/{seq}      upload an init segment  (body: the bytes; EntryHeader; bearer token)
//	PUT  /live/{stream}/media/{seq}     upload a media segment
//	PUT  /live/{stream}/end             end the stream (body: the signed End's JSON; bearer token)
//	GET  /live/{stream}/index.m3u8      HLS live playlist
//	GET  /live/{stream}/manifest.json   signed entries of the window
//	GET  /live/{stream}/{seq}.m4s       media segment; init-{seq}.mp4 an init segment
//	GET  /live/{stream}                 a small watch page (a gateway serves its own, web/templates/live.html)
//	GET  /api/live, /api/live/{stream}  state of the streams
type Origin struct {
	cfg       OriginConfig
	tokenHash [sha256.Size]byte
	log       *slog.Logger

	createMu sync.Mutex // held while a new stream takes its first entry
	mu       sync.Mutex
	streams  map[StreamID]*stream
	counts   map[string]uint64
}

// stream is one stream's window and ingest bookkeeping.
type stream struct {
	w       *Window
	created time.Time
	keep    time.Duration // the window's duration

	// relay, for a stream this gateway follows from elsewhere (Origin.Follow), reports how; such
	// a stream takes no uploads and is never dropped to make room.
	relay func() RelayStatus

	mu         sync.Mutex
	bytesIn    uint64
	bytesOut   uint64    // segment bytes served over HTTP
	lastAt     time.Time // when the last segment was accepted
	rejections map[string]uint64
	recent     []rate // the last media segments accepted, for the bitrate
}

type rate struct {
	size uint64
	dur  time.Duration
}

const recentSegments = 10

// NewOrigin makes an origin with no streams.
func NewOrigin(cfg OriginConfig) *Origin {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindowDuration
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.MaxSegmentSize == 0 {
		cfg.MaxSegmentSize = DefaultMaxSegmentSize
	}
	if cfg.PlaylistSegments <= 0 {
		cfg.PlaylistSegments = DefaultPlaylistSegments
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	o := &Origin{cfg: cfg, log: cfg.Log.With("component", "live"), streams: map[StreamID]*stream{}, counts: map[string]uint64{}}
	if cfg.IngestToken != "" {
		o.tokenHash = sha256.Sum256([]byte(cfg.IngestToken))
	}
	return o
}

// Counts is how many uploads had each result, ever (every label of Results is present).
func (o *Origin) Counts() map[string]uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]uint64, len(Results))
	for _, r := range Results {
		out[r] = o.counts[r]
	}
	return out
}

// httpError is an answer with a status, a reason and the result it counts as.
type httpError struct {
	status int
	result string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func fail(status int, result, format string, args ...any) *httpError {
	return &httpError{status: status, result: result, msg: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="swarmgate-ingest"`)
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

// ServeHTTP answers the routes listed on Origin.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if rest, ok := strings.CutPrefix(path, "/api/live"); ok {
		o.serveAPI(w, r, strings.TrimPrefix(rest, "/"))
		return
	}
	rest, ok := strings.CutPrefix(path, "/live/")
	if !ok {
		writeError(w, r, http.StatusNotFound, "not found")
		return
	}
	parts := strings.Split(rest, "/")
	if r.Method == http.MethodPut {
		res, err := o.ingest(r, parts)
		o.count(res)
		if err != nil {
			var he *httpError
			if errors.As(err, &he) {
				o.log.Debug("live upload refused", "path", path, "result", he.result, "err", he.msg)
				if r.Method == http.MethodHead || he.status == http.StatusUnauthorized {
					writeError(w, r, he.status, he.msg)
					return
				}
				// The result label too, for broadcasters to act on (see ResultMissingInit).
				writeJSON(w, he.status, map[string]string{"error": he.msg, "result": he.result})
				return
			}
			writeError(w, r, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusCreated, res)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, PUT")
		writeError(w, r, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	id, err := ParseStreamID(parts[0])
	if err != nil {
		writeError(w, r, http.StatusNotFound, err.Error())
		return
	}
	s := o.stream(id)
	if s == nil {
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("no live stream %s here", id))
		return
	}
	switch {
	case len(parts) == 1 || len(parts) == 2 && parts[1] == "":
		o.watchPage(w, id)
	case len(parts) == 2 && parts[1] == "index.m3u8":
		b, err := s.w.Playlist(PlaylistOptions{URI: func(e Entry) string { return SegmentName(e.Kind, e.Seq) }, MaxSegments: o.cfg.PlaylistSegments})
		if err != nil {
			writeError(w, r, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Cache-Control", "max-age=1")
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	case len(parts) == 2 && parts[1] == "manifest.json":
		b, err := json.Marshal(s.w.Manifest())
		if err != nil {
			writeError(w, r, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Cache-Control", "max-age=1")
		w.Header().Set("Content-Type", "application/json")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	case len(parts) == 2:
		kind, seq, ok := parseSegmentName(parts[1])
		if !ok {
			writeError(w, r, http.StatusNotFound, fmt.Sprintf("no %q in a live stream: want index.m3u8, manifest.json, <seq>.m4s or init-<seq>.mp4", parts[1]))
			return
		}
		seg, ok := s.w.Get(kind, seq)
		switch {
		case !ok:
			writeError(w, r, http.StatusNotFound, fmt.Sprintf("%s segment %d is not in the stream's window", kind, seq))
			return
		case seg.Data == nil:
			writeError(w, r, http.StatusNotFound, fmt.Sprintf("%s segment %d: its bytes are no longer kept here (fetch it by infohash %s)", kind, seq, seg.InfoHash.HexString()))
			return
		}
		ctype := "video/iso.segment"
		if kind == KindInit {
			ctype = "video/mp4"
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("ETag", `"`+hex.EncodeToString(seg.SHA256[:])+`"`)
		cw := &countingResponse{ResponseWriter: w}
		http.ServeContent(cw, r, "", seg.Start(), bytes.NewReader(seg.Data))
		s.mu.Lock()
		s.bytesOut += cw.n
		s.mu.Unlock()
	default:
		writeError(w, r, http.StatusNotFound, "not found")
	}
}

// countingResponse counts the body bytes written through it.
type countingResponse struct {
	http.ResponseWriter
	n uint64
}

func (c *countingResponse) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += uint64(n)
	return n, err
}

// parseSegmentName reads SegmentName's two forms, canonical spellings only.
func parseSegmentName(name string) (Kind, uint64, bool) {
	kind, num := KindMedia, ""
	if n, ok := strings.CutSuffix(name, ".m4s"); ok {
		num = n
	} else if n, ok := strings.CutPrefix(name, "init-"); ok {
		if num, ok = strings.CutSuffix(n, ".mp4"); !ok {
			return 0, 0, false
		}
		kind = KindInit
	}
	seq, err := strconv.ParseUint(num, 10, 64)
	if err != nil || strconv.FormatUint(seq, 10) != num {
		return 0, 0, false
	}
	return kind, seq, true
}

func (o *Origin) count(res *IngestResult) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.counts[res.Result]++
}

func (o *Origin) stream(id StreamID) *stream {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.streams[id]
}

// IngestResult is the JSON answer to an upload (201 when accepted).
type IngestResult struct {
	Result  string `json:"result"`
	Stream  string `json:"stream,omitempty"`
	Kind    string `json:"kind,omitempty"`
	Seq     uint64 `json:"seq"`
	Missing uint64 `json:"missing,omitempty"`
}

// ingest takes one upload; res.Result is always set.
func (o *Origin) ingest(r *http.Request, parts []string) (res *IngestResult, err error) {
	res = &IngestResult{}
	defer func() {
		var he *httpError
		if errors.As(err, &he) {
			res.Result = he.result
		} else if err == nil {
			res.Result = ResultAccepted
		} else {
			res.Result = ResultMalformed
		}
		if id, perr := ParseStreamID(res.Stream); err != nil && perr == nil {
			if s := o.stream(id); s != nil {
				s.mu.Lock()
				s.rejections[res.Result]++
				s.mu.Unlock()
			}
		}
	}()
	if o.cfg.IngestToken == "" {
		return res, fail(http.StatusForbidden, ResultIngestOff, "live ingest is off on this gateway: start it with --ingest-token (SWARMGATE_INGEST_TOKEN)")
	}
	if err := o.checkToken(r); err != nil {
		return res, err
	}
	if len(parts) == 2 && parts[1] == "end" {
		return res, o.ingestEnd(r, parts[0], res)
	}
	if len(parts) != 3 || (parts[1] != "init" && parts[1] != "media") {
		return res, fail(http.StatusNotFound, ResultMalformed, "upload to /live/{stream}/init/{seq} or /live/{stream}/media/{seq}")
	}
	id, err := ParseStreamID(parts[0])
	if err != nil {
		return res, fail(http.StatusBadRequest, ResultMalformed, "%v", err)
	}
	var kind Kind
	kind.UnmarshalText([]byte(parts[1]))
	seq, err := strconv.ParseUint(parts[2], 10, 64)
	if err != nil || strconv.FormatUint(seq, 10) != parts[2] {
		return res, fail(http.StatusBadRequest, ResultMalformed, "seq %q: want a decimal number", parts[2])
	}
	res.Stream, res.Kind, res.Seq = id.String(), kind.String(), seq

	hdr := strings.TrimSpace(r.Header.Get(EntryHeader))
	if hdr == "" {
		return res, fail(http.StatusBadRequest, ResultMalformed, "no %s header: it carries the signed entry (its JSON, base64url)", EntryHeader)
	}
	js, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(hdr, "="))
	if err != nil {
		return res, fail(http.StatusBadRequest, ResultMalformed, "%s: not base64url: %v", EntryHeader, err)
	}
	var se SignedEntry
	if err := json.Unmarshal(js, &se); err != nil {
		return res, fail(http.StatusBadRequest, ResultMalformed, "%s: %v", EntryHeader, err)
	}
	if se.Kind != kind || se.Seq != seq {
		return res, fail(http.StatusBadRequest, ResultMalformed, "the URL says %s segment %d, the entry says %s segment %d", kind, seq, se.Kind, se.Seq)
	}
	if se.Size > o.cfg.MaxSegmentSize || r.ContentLength > int64(o.cfg.MaxSegmentSize) {
		return res, fail(http.StatusRequestEntityTooLarge, ResultTooLarge, "segment larger than the limit of %d bytes", o.cfg.MaxSegmentSize)
	}
	// The signature needs no body: check it before reading one.
	if err := Verify(id, se); err != nil {
		return res, rejected(err)
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, int64(o.cfg.MaxSegmentSize)+1))
	if err != nil {
		return res, fail(http.StatusBadRequest, ResultMalformed, "reading the body: %v", err)
	}
	if uint64(len(data)) > o.cfg.MaxSegmentSize {
		return res, fail(http.StatusRequestEntityTooLarge, ResultTooLarge, "segment larger than the limit of %d bytes", o.cfg.MaxSegmentSize)
	}
	if s := o.stream(id); s != nil && s.relay != nil {
		return res, fail(http.StatusConflict, ResultRelayedStream, "this gateway relays stream %s from elsewhere (--relay): upload to its origin", id)
	}
	if kind == KindMedia {
		// A media segment is only playable after its init segment. A gateway that restarted
		// (the window is in memory) gets media first: it asks for the init again.
		if s := o.stream(id); s == nil || !s.hasInitFor(seq) {
			return res, fail(http.StatusConflict, ResultMissingInit, "media segment %d has no init segment before it here (did the gateway restart?): upload its init segment first", seq)
		}
	}
	s, added, err := o.add(id, se, data)
	if err != nil {
		return res, err
	}
	res.Missing = added.Missing
	o.accepted(id, s, se, data)
	return res, nil
}

func (s *stream) hasInitFor(seq uint64) bool {
	_, ok := s.w.InitFor(seq)
	return ok
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
// gateway holds its limit of streams.
func (o *Origin) Follow(id StreamID, status func() RelayStatus) error {
	o.createMu.Lock()
	defer o.createMu.Unlock()
	if o.stream(id) != nil {
		return fmt.Errorf("live: stream %s is here already", id)
	}
	s, err := o.newStream(id)
	if err != nil {
		return err
	}
	s.relay = status
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.streams) >= o.cfg.MaxStreams {
		return fmt.Errorf("live: relaying stream %s would exceed the limit of %d live streams (--max-live-streams)", id, o.cfg.MaxStreams)
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
		return Added{}, fmt.Errorf("live: stream %s is not followed here", id)
	}
	added, err := s.w.Add(se, data)
	if err != nil {
		return Added{}, err
	}
	o.accepted(id, s, se, data)
	return added, nil
}

// ingestEnd takes a broadcaster's signed End (PUT /live/{stream}/end).
func (o *Origin) ingestEnd(r *http.Request, rawID string, res *IngestResult) error {
	id, err := ParseStreamID(rawID)
	if err != nil {
		return fail(http.StatusBadRequest, ResultMalformed, "%v", err)
	}
	res.Stream, res.Kind = id.String(), "end"
	var e End
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&e); err != nil {
		return fail(http.StatusBadRequest, ResultMalformed, "the body must be the signed end's JSON: %v", err)
	}
	res.Seq = e.LastSeq
	s := o.stream(id)
	switch {
	case s == nil:
		return fail(http.StatusNotFound, ResultMalformed, "no live stream %s here", id)
	case s.relay != nil:
		return fail(http.StatusConflict, ResultRelayedStream, "this gateway relays stream %s from elsewhere (--relay): end it at its origin", id)
	}
	if err := s.w.End(e); err != nil {
		return rejected(err)
	}
	o.log.Info("live stream ended by its broadcaster", "stream", id, "last_seq", e.LastSeq)
	return nil
}

// EndRelayed ends a followed stream with its broadcaster's End, as read from a source.
func (o *Origin) EndRelayed(id StreamID, e End) error {
	s := o.stream(id)
	if s == nil || s.relay == nil {
		return fmt.Errorf("live: stream %s is not followed here", id)
	}
	return s.w.End(e)
}

func (o *Origin) checkToken(r *http.Request) error {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return fail(http.StatusUnauthorized, ResultUnauthorized, "uploads need the ingest token as \"Authorization: Bearer <token>\"")
	}
	scheme, tok, ok := strings.Cut(auth, " ")
	h := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(h[:], o.tokenHash[:]) != 1 {
		return fail(http.StatusUnauthorized, ResultUnauthorized, "wrong ingest token")
	}
	return nil
}

// ResultOf is the result label (one of Results) of a window's refusal.
func ResultOf(err error) string {
	var he *httpError
	if errors.As(rejected(err), &he) {
		return he.result
	}
	return ResultMalformed
}

// rejected maps a window's RejectError to an answer.
func rejected(err error) error {
	status, result := http.StatusBadRequest, ResultMalformed
	for _, m := range []struct {
		err    error
		status int
		result string
	}{
		{ErrBadSignature, http.StatusUnprocessableEntity, ResultBadSignature},
		{ErrWrongStream, http.StatusUnprocessableEntity, ResultWrongStream},
		{ErrContentMismatch, http.StatusUnprocessableEntity, ResultContentMismatch},
		{ErrInfoHashMismatch, http.StatusUnprocessableEntity, ResultInfoHashMismatch},
		{ErrTooLarge, http.StatusRequestEntityTooLarge, ResultTooLarge},
		{ErrReplay, http.StatusConflict, ResultReplay},
		{ErrOutOfOrder, http.StatusConflict, ResultOutOfOrder},
		{ErrTooOld, http.StatusConflict, ResultTooOld},
		{ErrFuture, http.StatusUnprocessableEntity, ResultFuture},
	} {
		if errors.Is(err, m.err) {
			status, result = m.status, m.result
			break
		}
	}
	return fail(status, result, "%s", strings.TrimPrefix(err.Error(), "live: "))
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
		return nil, Added{}, fail(http.StatusServiceUnavailable, ResultStreamLimit, "this gateway holds its limit of %d live streams (--max-live-streams)", o.cfg.MaxStreams)
	}
	o.streams[id] = s
	o.log.Info("new live stream", "stream", id)
	return s, added, nil
}

func (o *Origin) newStream(id StreamID) (*stream, error) {
	w, err := NewWindow(WindowConfig{Stream: id, Duration: o.cfg.Window, MaxSegmentSize: o.cfg.MaxSegmentSize, MaxBytes: o.cfg.MaxBytes, Now: o.cfg.Now})
	if err != nil {
		return nil, err
	}
	return &stream{w: w, created: o.cfg.Now(), keep: o.cfg.Window, rejections: map[string]uint64{}}, nil
}

// Stream states.
const (
	StateLive    = "live"    // a segment came within 3 target durations (Window.TargetDuration)
	StateStalled = "stalled" // none for longer, but the window still holds media
	StateEnded   = "ended"   // the broadcaster ended it, or nothing came for the window's whole duration
)

func (s *stream) state(now time.Time) string {
	s.mu.Lock()
	last := s.lastAt
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
	BitrateBPS    float64           `json:"bitrate_bps"`
	Accepted      uint64            `json:"accepted"`
	Rejected      uint64            `json:"rejected"`
	Rejections    map[string]uint64 `json:"rejections"`
	Gaps          uint64            `json:"gaps"`
	Missing       uint64            `json:"missing"`
	StartedAt     time.Time         `json:"started_at"` // when this gateway took the stream's first segment
	LastSegmentAt *time.Time        `json:"last_segment_at,omitempty"`
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

// serveAPI answers /api/live and /api/live/{stream}.
func (o *Origin) serveAPI(w http.ResponseWriter, r *http.Request, rest string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, r, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	base := baseOf(r)
	if rest == "" {
		writeJSON(w, http.StatusOK, o.Statuses(base))
		return
	}
	id, err := ParseStreamID(rest)
	if err != nil {
		writeError(w, r, http.StatusNotFound, err.Error())
		return
	}
	st, ok := o.Status(id, base)
	if !ok {
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("no live stream %s here", id))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// BaseURLHeader, when a mounting server sets it on the request, is the base URL the origin's
// answers name (e.g. the gateway's --public-url); else the request's own host.
const BaseURLHeader = "X-Swarmgate-Base-Url"

func baseOf(r *http.Request) string {
	if b := r.Header.Get(BaseURLHeader); b != "" {
		return strings.TrimSuffix(b, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// watchPage is a minimal page for an Origin mounted on its own: a <video> for players with native
// HLS, and the stream's links. The gateway answers /live/{stream} with its P2P watch page instead.
func (o *Origin) watchPage(w http.ResponseWriter, id StreamID) {
	p := "/live/" + id.String()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>swarmgate live %[1]s</title>
<h1>Live stream %[1]s</h1>
<video src="%[2]s/index.m3u8" controls autoplay muted playsinline style="max-width:100%%"></video>
<p><a href="%[2]s/index.m3u8">HLS playlist</a> · <a href="%[2]s/manifest.json">signed manifest</a> · <a href="/api/live/%[1]s">status</a></p>
`, html.EscapeString(id.String()), html.EscapeString(p))
}
