package registry

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent"
)

// The states a torrent is in, as the API names them.
const (
	StateMetadata    = "metadata"    // waiting for the info dictionary
	StateIdle        = "idle"        // incomplete, nobody watching
	StateDownloading = "downloading" // incomplete, fetching ahead for viewers
	StateSeeding     = "seeding"     // complete
)

// Entry is a torrent the registry holds, with the bookkeeping anacrolix does not keep for us.
type Entry struct {
	t        *torrent.Torrent
	added    time.Time
	loaded   time.Time // when this run added it (added survives restarts)
	src      Source
	linger   time.Duration     // Config.ViewerLinger
	playable func(string) bool // Config.Playable
	// directPeers are the peers the torrent was added with (a magnet's x.pe), dialled again when
	// viewers come back: anacrolix drops a seed once it is complete, and evicted pieces need a peer.
	directPeers []string

	lastRead atomic.Int64 // unix nanos of the last HTTP read (stream or webseed)
	// lastWatched is when a viewer was last seen (unix nanos), for IdleTimeout.
	lastWatched atomic.Int64
	toHTTP      atomic.Int64
	fetchAll    atomic.Bool // Source.FetchAll, which a later Add may turn on
	webrtc      webrtcConns

	mu         sync.Mutex
	rates      Rates
	prefetch   context.CancelFunc
	gate       prefetchGate
	wasWatched bool
	// warmFile is the file a page opened before the metadata came would play (-1: the page
	// picks), warmed when the metadata arrives; warmPending says there is one.
	warmFile    int
	warmPending bool
	// diskErr is the last failed write, until a write succeeds; pausedAt is when downloading
	// was paused for it (zero while downloading).
	hasDiskErr atomic.Bool
	diskErr    string
	pausedAt   time.Time
}

// Torrent is the anacrolix torrent.
func (e *Entry) Torrent() *torrent.Torrent { return e.t }

// Added is when the torrent was first added (kept across restarts).
func (e *Entry) Added() time.Time { return e.added }

// Loaded is when this run of the registry added the torrent (a restored one: when it was
// restored), which is how long it has been looking for peers.
func (e *Entry) Loaded() time.Time { return e.loaded }

// Source is how the torrent was added.
func (e *Entry) Source() Source { return e.src }

// OwnsData is true when the data lives in the registry's DataDir and may be deleted with the
// torrent; false for folders seeded in place.
func (e *Entry) OwnsData() bool { return e.src.SeedDir == "" }

// Touch records an HTTP read now: the torrent counts as watched for ViewerLinger.
func (e *Entry) Touch() { e.lastRead.Store(time.Now().UnixNano()) }

// LastRead is when Touch was last called (the zero time if never).
func (e *Entry) LastRead() time.Time {
	if n := e.lastRead.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// LastWatched is when a viewer was last seen (kept across restarts, for IdleTimeout).
func (e *Entry) LastWatched() time.Time { return time.Unix(0, e.lastWatched.Load()) }

// CountHTTP adds n bytes sent over HTTP (streams, webseed) to the torrent's counts.
func (e *Entry) CountHTTP(n int) { e.toHTTP.Add(int64(n)) }

// Watched reports whether anyone is reading the torrent now: an HTTP read within ViewerLinger,
// or a WebRTC peer connected.
func (e *Entry) Watched(now time.Time) bool {
	if now.Sub(time.Unix(0, e.lastRead.Load())) < e.linger {
		return true
	}
	e.webrtc.mu.Lock()
	defer e.webrtc.mu.Unlock()
	for _, closed := range e.webrtc.live {
		if !closed {
			return true
		}
	}
	return false
}

// State is the torrent's state: one of the State constants.
func (e *Entry) State() string {
	if !HasInfo(e.t) {
		return StateMetadata
	}
	if e.t.Complete().Bool() {
		return StateSeeding
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.prefetch != nil {
		return StateDownloading
	}
	return StateIdle
}

// ByteCounts splits a torrent's traffic by the kind of the other end.
type ByteCounts struct {
	FromNative  int64 `json:"from_native"`
	FromWebRTC  int64 `json:"from_webrtc"`
	FromWebseed int64 `json:"from_webseed"`
	ToNative    int64 `json:"to_native"`
	ToWebRTC    int64 `json:"to_webrtc"`
	ToHTTP      int64 `json:"to_http"`
}

// PeerCounts are the torrent's connected peers by kind.
type PeerCounts struct {
	Native int `json:"native"`
	WebRTC int `json:"webrtc"`
}

// Counts returns the torrent's byte and peer counts. It must not be called from an anacrolix
// callback (it reads conns' stats, which takes anacrolix's lock).
func (e *Entry) Counts() (ByteCounts, PeerCounts) {
	s := e.t.Stats()
	webWritten, webRead, webOpen := e.webrtc.totals()
	peers := PeerCounts{WebRTC: webOpen, Native: max(0, len(e.t.PeerConns())-webOpen)}
	b := ByteCounts{
		FromNative:  max(0, s.PeerConns.BytesReadUsefulData.Int64()-webRead),
		FromWebRTC:  webRead,
		FromWebseed: s.WebSeeds.BytesReadUsefulData.Int64(),
		ToNative:    max(0, s.PeerConns.BytesWrittenData.Int64()-webWritten),
		ToWebRTC:    webWritten,
		ToHTTP:      e.toHTTP.Load(),
	}
	return b, peers
}

// Rates are bytes per second over the last sampling interval (Config.Tick).
type Rates struct {
	Download float64 `json:"download"`
	Upload   float64 `json:"upload"`

	prevDown, prevUp int64
	prevAt           time.Time
}

// SampledAt is when the rates were last sampled (the zero time before the first tick).
func (r Rates) SampledAt() time.Time { return r.prevAt }

func (e *Entry) sampleRates(now time.Time) {
	s := e.t.Stats()
	down := s.BytesReadUsefulData.Int64()
	up := s.BytesWrittenData.Int64() + e.toHTTP.Load()
	e.mu.Lock()
	defer e.mu.Unlock()
	r := &e.rates
	if !r.prevAt.IsZero() {
		dt := now.Sub(r.prevAt).Seconds()
		if dt > 0 {
			r.Download = float64(down-r.prevDown) / dt
			r.Upload = float64(up-r.prevUp) / dt
		}
	}
	r.prevDown, r.prevUp, r.prevAt = down, up, now
}

// Rates returns the last sampled rates.
func (e *Entry) Rates() Rates {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rates
}

// DiskError is the last failed write's error, until a write succeeds ("" when none).
func (e *Entry) DiskError() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.diskErr
}

// recordDiskError keeps err for the API; it reports whether writes were fine until now (worth a
// log line: the next ones are not, until a write succeeds).
func (e *Entry) recordDiskError(err error) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	first := e.diskErr == ""
	e.diskErr = err.Error()
	e.hasDiskErr.Store(true)
	return first
}

func (e *Entry) clearDiskError() {
	if !e.hasDiskErr.Load() {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.diskErr = ""
	e.hasDiskErr.Store(false)
}

// pauseDownload stops anacrolix fetching the torrent after a write error. It takes anacrolix's
// lock: never call it from a storage call.
func (e *Entry) pauseDownload(now time.Time) {
	e.mu.Lock()
	first := e.pausedAt.IsZero()
	if first {
		e.pausedAt = now
	}
	e.mu.Unlock()
	if first {
		e.t.DisallowDataDownload()
	}
}

func (e *Entry) downloadPaused() (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pausedAt, !e.pausedAt.IsZero()
}

func (e *Entry) resumeDownload() {
	e.mu.Lock()
	e.pausedAt = time.Time{}
	e.mu.Unlock()
	e.t.AllowDataDownload()
}

// webrtcConns tracks a torrent's WebRTC peer conns so that their bytes count after they close.
// anacrolix calls its conn callbacks with its lock held, where reading a conn's stats would
// deadlock: the callbacks only file conns here, and stats are read later.
type webrtcConns struct {
	mu     sync.Mutex
	live   map[*torrent.PeerConn]bool // value: closed, stats not yet folded into the totals
	closed torrent.ConnStats
}

func (w *webrtcConns) added(pc *torrent.PeerConn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.live == nil {
		w.live = make(map[*torrent.PeerConn]bool)
	}
	w.live[pc] = false
}

func (w *webrtcConns) closedConn(pc *torrent.PeerConn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.live[pc]; ok {
		w.live[pc] = true
	}
}

// totals returns the data bytes written to and usefully read from WebRTC peers, and how many are
// connected. It must not be called from an anacrolix callback.
func (w *webrtcConns) totals() (written, readUseful int64, open int) {
	w.mu.Lock()
	conns := make(map[*torrent.PeerConn]bool, len(w.live))
	for pc, closed := range w.live {
		conns[pc] = closed
	}
	w.mu.Unlock()
	var gone torrent.ConnStats
	for pc, closed := range conns {
		s := pc.Stats()
		if closed {
			gone.BytesWrittenData.Add(s.BytesWrittenData.Int64())
			gone.BytesReadUsefulData.Add(s.BytesReadUsefulData.Int64())
			continue
		}
		open++
		written += s.BytesWrittenData.Int64()
		readUseful += s.BytesReadUsefulData.Int64()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for pc, closed := range conns {
		if closed {
			delete(w.live, pc)
		}
	}
	w.closed.BytesWrittenData.Add(gone.BytesWrittenData.Int64())
	w.closed.BytesReadUsefulData.Add(gone.BytesReadUsefulData.Int64())
	return written + w.closed.BytesWrittenData.Int64(), readUseful + w.closed.BytesReadUsefulData.Int64(), open
}

// WebRTCConnAdded files a WebRTC peer conn of a torrent the registry holds: the torrent counts
// as watched while it is open, and its bytes count after it closes. anacrolix calls this with
// its lock held: it only files the conn.
func (r *Registry) WebRTCConnAdded(pc *torrent.PeerConn) {
	if t := pc.Torrent(); t != nil {
		if e, ok := r.Get(t.InfoHash()); ok {
			e.webrtc.added(pc)
			r.DemandChanged()
		}
	}
}

// WebRTCConnClosed marks a conn WebRTCConnAdded filed as closed (under anacrolix's lock too).
func (r *Registry) WebRTCConnClosed(pc *torrent.PeerConn) {
	if t := pc.Torrent(); t != nil {
		if e, ok := r.Get(t.InfoHash()); ok {
			e.webrtc.closedConn(pc)
		}
	}
}
