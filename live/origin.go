package live

import (
	"crypto/sha256"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// Origin defaults.
const (
	DefaultMaxStreams       = 10
	DefaultPlaylistSegments = 30
)

// OriginConfig sets up an Origin. Start from DefaultOriginConfig.
type OriginConfig struct {
	// IngestToken must come as "Authorization: Bearer <token>" with every upload. Empty turns
	// ingest off: uploads answer 403.
	IngestToken string
	// Window is how far back each stream's window keeps media segments.
	Window time.Duration
	// MaxStreams bounds the streams held at once; a stream that ended (its window emptied)
	// makes room for a new one.
	MaxStreams int
	// MaxSegmentSize refuses larger uploads with 413.
	MaxSegmentSize uint64
	// MaxBytes caps the segment bytes each stream keeps (0 keeps none: entries only).
	MaxBytes int64
	// PlaylistSegments is how many of the newest media segments index.m3u8 lists.
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
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Dir, if set, keeps each stream's window on disk in Dir/<stream id>/ (see WindowConfig.Dir),
	// within MaxBytes per stream as in memory; Restore brings them back after a restart. Empty:
	// memory only.
	Dir string
}

// DefaultOriginConfig returns the defaults: ingest off, 10 streams of 30 minutes, segments of up
// to 32 MiB, 256 MiB kept per stream, 30 segments in a playlist.
func DefaultOriginConfig() OriginConfig {
	return OriginConfig{
		Window:           DefaultWindowDuration,
		MaxStreams:       DefaultMaxStreams,
		MaxSegmentSize:   DefaultMaxSegmentSize,
		MaxBytes:         DefaultMaxBytes,
		PlaylistSegments: DefaultPlaylistSegments,
	}
}

// Validate reports every unusable field, each with the reason.
func (c OriginConfig) Validate() error {
	var errs configErrors
	errs.duration("Window", c.Window)
	errs.positive("MaxStreams", int64(c.MaxStreams))
	if c.MaxSegmentSize == 0 {
		errs.add("MaxSegmentSize", "must be > 0")
	}
	if c.MaxBytes < 0 {
		errs.add("MaxBytes", "must be >= 0 (0 keeps no bytes), got %d", c.MaxBytes)
	}
	errs.positive("PlaylistSegments", int64(c.PlaylistSegments))
	return errs.err()
}

// Origin is a gateway's live origin: it takes signed segments from broadcasters and serves each
// stream's playlist, segments and signed manifest. It never holds a private key: each upload is
// checked against the stream id in its URL, which is the broadcaster's public key.
//
// It is an http.Handler for these routes (see routes.go), relative to where it is mounted:
//
//	PUT  /live/{stream}/init/{seq}      upload an init segment  (body: the bytes; EntryHeader; bearer token)
//	PUT  /live/{stream}/media/{seq}     upload a media segment
//	PUT  /live/{stream}/end             end the stream (body: the signed End's JSON; bearer token)
//	GET  /live/{stream}/index.m3u8      HLS live playlist
//	GET  /live/{stream}/manifest.json   signed entries of the window
//	GET  /live/{stream}/{seq}.m4s       media segment; init-{seq}.mp4 an init segment
//	GET  /api/live, /api/live/{stream}  state of the streams
//
// Errors answer JSON {"error": "..."} (uploads add the result label). The watch page at
// /live/{stream} is the mounting server's (the gateway's web/templates/live.html).
type Origin struct {
	cfg       OriginConfig
	tokenHash [sha256.Size]byte
	log       *slog.Logger
	mux       *http.ServeMux

	createMu sync.Mutex // held while a new stream takes its first entry
	mu       sync.Mutex
	streams  map[StreamID]*stream
	counts   map[string]uint64
}

// NewOrigin makes an origin with no streams; log nil discards its logs.
func NewOrigin(cfg OriginConfig, log *slog.Logger) (*Origin, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := &Origin{cfg: cfg, log: log.With("component", "live"), streams: map[StreamID]*stream{}, counts: map[string]uint64{}}
	if cfg.IngestToken != "" {
		o.tokenHash = sha256.Sum256([]byte(cfg.IngestToken))
	}
	o.mux = o.routes()
	return o, nil
}

// ServeHTTP answers the routes listed on Origin. A path with empty, "." or ".." elements names
// nothing here: it answers 404 rather than ServeMux's redirect to a cleaned path.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !isCleanPath(r.URL.Path) {
		notFound(w, r)
		return
	}
	o.mux.ServeHTTP(w, r)
}

func isCleanPath(p string) bool {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
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

func (o *Origin) count(result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.counts[result]++
}
