package gateway

import (
	"context"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
)

// torrentsDir is where, below the data dir, the piece cache keeps downloaded torrents' files.
const torrentsDir = "torrents"

// prefetchReadahead is how far ahead of its position the in-order prefetcher asks for pieces.
const prefetchReadahead = 32 << 20

// pageWarmBytes is how much of a file a watch or embed page has fetched for its player: the first
// pieces, so that playback starts without waiting on the swarm. The rest waits for a player to
// read, since link-preview bots open pages too.
const pageWarmBytes = 2 << 20

// entry is a torrent the gateway serves, with the bookkeeping anacrolix does not keep for us.
type entry struct {
	t     *torrent.Torrent
	added time.Time
	src   source
	// directPeers are the peers the torrent was added with (a magnet's x.pe), dialled again when
	// viewers come back: anacrolix drops a seed once it is complete, and evicted pieces need a peer.
	directPeers []string

	lastRead atomic.Int64 // unix nanos of the last HTTP read (stream or webseed)
	// lastWatched is when a viewer was last seen (unix nanos), for --idle-timeout.
	lastWatched atomic.Int64
	toHTTP      atomic.Int64
	webrtc      webrtcConns

	mu         sync.Mutex
	rates      rates
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

// recordDiskError keeps err for the API; it reports whether writes were fine until now (worth a
// log line: the next ones are not, until a write succeeds).
func (e *entry) recordDiskError(err error) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	first := e.diskErr == ""
	e.diskErr = err.Error()
	e.hasDiskErr.Store(true)
	return first
}

func (e *entry) clearDiskError() {
	if !e.hasDiskErr.Load() {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.diskErr = ""
	e.hasDiskErr.Store(false)
}

func (e *entry) diskError() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.diskErr
}

// pauseDownload stops anacrolix fetching the torrent after a write error. It takes anacrolix's
// lock: never call it from a storage call.
func (e *entry) pauseDownload(now time.Time) {
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

func (e *entry) downloadPaused() (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pausedAt, !e.pausedAt.IsZero()
}

func (e *entry) resumeDownload() {
	e.mu.Lock()
	e.pausedAt = time.Time{}
	e.mu.Unlock()
	e.t.AllowDataDownload()
}

// addDirectPeers adds peers given by address (a magnet's x.pe). Unlike anacrolix's own handling of
// a spec's peers they are not trusted: a trusted peer is never banned, so a lying seeder named in
// a magnet was asked for the same bad piece again and again.
func addDirectPeers(t *torrent.Torrent, addrs []string) {
	if len(addrs) == 0 {
		return
	}
	peers := make([]torrent.PeerInfo, 0, len(addrs))
	for _, a := range addrs {
		peers = append(peers, torrent.PeerInfo{Addr: torrent.StringAddr(a), Source: torrent.PeerSourceDirect})
	}
	t.AddPeers(peers)
}

// ownsData is true when the data lives in the gateway's data dir and may be deleted with it;
// false for folders seeded in place.
func (e *entry) ownsData() bool { return e.src.SeedDir == "" }

func (e *entry) touch() { e.lastRead.Store(time.Now().UnixNano()) }

// countingWriter counts what HTTP handlers send for a torrent.
func (e *entry) countHTTP(n int) { e.toHTTP.Add(int64(n)) }

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

// byteCounts splits a torrent's traffic by the kind of the other end.
type byteCounts struct {
	FromNative  int64 `json:"from_native"`
	FromWebRTC  int64 `json:"from_webrtc"`
	FromWebseed int64 `json:"from_webseed"`
	ToNative    int64 `json:"to_native"`
	ToWebRTC    int64 `json:"to_webrtc"`
	ToHTTP      int64 `json:"to_http"`
}

type peerCounts struct {
	Native int `json:"native"`
	WebRTC int `json:"webrtc"`
}

func (e *entry) counts() (byteCounts, peerCounts) {
	s := e.t.Stats()
	webWritten, webRead, webOpen := e.webrtc.totals()
	peers := peerCounts{WebRTC: webOpen, Native: max(0, len(e.t.PeerConns())-webOpen)}
	b := byteCounts{
		FromNative:  max(0, s.PeerConns.BytesReadUsefulData.Int64()-webRead),
		FromWebRTC:  webRead,
		FromWebseed: s.WebSeeds.BytesReadUsefulData.Int64(),
		ToNative:    max(0, s.PeerConns.BytesWrittenData.Int64()-webWritten),
		ToWebRTC:    webWritten,
		ToHTTP:      e.toHTTP.Load(),
	}
	return b, peers
}

// rates are bytes per second over the last sampling interval.
type rates struct {
	Download float64 `json:"download"`
	Upload   float64 `json:"upload"`

	prevDown, prevUp int64
	prevAt           time.Time
}

func (e *entry) sampleRates(now time.Time) {
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

func (e *entry) currentRates() rates {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rates
}

// hasInfo reports whether the torrent's metadata is fully set up. anacrolix sets Info before it
// builds the file list; GotInfo closes after, so only it says that Files is safe to call.
func hasInfo(t *torrent.Torrent) bool {
	select {
	case <-t.GotInfo():
		return true
	default:
		return false
	}
}

// state is the torrent's state as the API names it.
func (e *entry) state() string {
	if !hasInfo(e.t) {
		return stateMetadata
	}
	if e.t.Complete().Bool() {
		return stateSeeding
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.prefetch != nil {
		return stateDownloading
	}
	return stateIdle
}

// watched reports whether anyone is reading the torrent now: an HTTP read within linger, or a
// WebRTC peer connected.
func (e *entry) watched(now time.Time, linger time.Duration) bool {
	if now.Sub(time.Unix(0, e.lastRead.Load())) < linger {
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

// updateDemand fetches a watched torrent ahead in order, and stops when nobody watches it.
func (g *Gateway) updateDemand(e *entry, now time.Time) {
	g.trackViewers(e, now)
	if !hasInfo(e.t) {
		return
	}
	watched := e.watched(now, g.cfg.ViewerLinger) && !e.t.Complete().Bool()
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case watched && e.prefetch == nil:
		if len(e.t.PeerConns()) == 0 {
			addDirectPeers(e.t, e.directPeers)
		}
		ctx, cancel := context.WithCancel(context.Background())
		e.prefetch = cancel
		e.t.DownloadAll()
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			prefetchInOrder(ctx, e.t, &e.gate)
		}()
	case !watched && e.prefetch != nil:
		e.prefetch()
		e.prefetch = nil
		if !e.t.Complete().Bool() {
			e.t.CancelPieces(0, e.t.NumPieces())
		}
	}
}

// trackViewers keeps lastWatched, and saves it when the last viewer leaves, so that
// --idle-timeout counts across restarts.
func (g *Gateway) trackViewers(e *entry, now time.Time) {
	w := e.watched(now, g.cfg.ViewerLinger)
	if w {
		e.lastWatched.Store(now.UnixNano())
	}
	e.mu.Lock()
	left := e.wasWatched && !w
	e.wasWatched = w
	e.mu.Unlock()
	if left && !e.src.ephemeral {
		g.saveState()
	}
}

// pageView is a watch or embed page opened: fetch the first pieces of the file it would play
// (see warm), now or once the metadata is here. It is not a viewer: only reading (/stream,
// /webseed, a WebRTC peer) starts fetching the whole torrent.
func (e *entry) pageView(file int) {
	if !e.t.Complete().Bool() && len(e.t.PeerConns()) == 0 {
		addDirectPeers(e.t, e.directPeers)
	}
	// Filed before looking at the metadata: if it arrives in between, gotInfo takes it.
	e.mu.Lock()
	e.warmFile, e.warmPending = file, true
	e.mu.Unlock()
	if hasInfo(e.t) {
		e.gotInfo()
	}
}

// gotInfo warms the file of a page opened before the metadata came, if any.
func (e *entry) gotInfo() {
	e.mu.Lock()
	file, pending := e.warmFile, e.warmPending
	e.warmPending = false
	e.mu.Unlock()
	if pending {
		e.warm(file)
	}
}

// warm asks for the pieces holding the first pageWarmBytes of a page's file: file, or with
// file < 0 the largest video or audio file (the page prefers one the browser plays, which it
// alone knows). A file that is not video or audio gets nothing: the page will not play it.
func (e *entry) warm(file int) {
	files := e.t.Files()
	var f *torrent.File
	if file >= 0 && file < len(files) {
		f = files[file]
	} else if file < 0 {
		for _, c := range files {
			if isMedia(c.DisplayPath()) && (f == nil || c.Length() > f.Length()) {
				f = c
			}
		}
	}
	if f == nil || f.Length() == 0 || !isMedia(f.DisplayPath()) {
		return
	}
	pl := e.t.Info().PieceLength
	end := int((f.Offset()+min(f.Length(), pageWarmBytes)-1)/pl) + 1
	e.t.DownloadPieces(f.BeginPieceIndex(), end)
}

// prefetchGate lets the in-order prefetch run only while no HTTP reader is open. anacrolix gives
// every reader's pieces the same priorities (the piece under it "now", the ones after it
// "readahead", lower indexes first among equals), so a viewer who seeks far ahead would wait
// behind the prefetch's whole window. While a reader is open, its own readahead leads and the
// rest of the torrent still comes at normal priority (DownloadAll); the prefetch resumes where
// it stopped once the last reader has closed. The zero value is ready: no readers.
type prefetchGate struct {
	mu      sync.Mutex
	readers int
	busy    chan struct{} // closed when readers drops to 0; nil while none is open
	yield   context.CancelFunc
}

// readerOpened stops the prefetch's reader, if it runs, until readerClosed has balanced it.
func (g *prefetchGate) readerOpened() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.readers++
	if g.readers == 1 {
		g.busy = make(chan struct{})
		if g.yield != nil {
			g.yield()
			g.yield = nil
		}
	}
}

func (g *prefetchGate) readerClosed() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.readers--
	if g.readers == 0 {
		close(g.busy)
		g.busy = nil
	}
}

// acquire waits until no reader is open and returns a context for the prefetch's reader that
// ends when one opens, or when ctx does.
func (g *prefetchGate) acquire(ctx context.Context) (context.Context, context.CancelFunc, error) {
	for {
		g.mu.Lock()
		busy := g.busy
		if busy == nil {
			rctx, cancel := context.WithCancel(ctx)
			g.yield = cancel
			g.mu.Unlock()
			return rctx, cancel, nil
		}
		g.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// prefetchInOrder reads the torrent from start to end so that its pieces are asked for in order,
// ahead of WebRTC peers' requests, pausing while HTTP readers lead (see prefetchGate).
func prefetchInOrder(ctx context.Context, t *torrent.Torrent, gate *prefetchGate) {
	var pos int64
	for {
		rctx, cancel, err := gate.acquire(ctx)
		if err != nil {
			return
		}
		r := t.NewReader()
		r.SetReadahead(prefetchReadahead)
		r.SetContext(rctx)
		_, err = r.Seek(pos, io.SeekStart)
		if err == nil {
			var n int64
			n, err = io.Copy(io.Discard, r)
			pos += n
		}
		r.Close()
		yielded := rctx.Err() != nil
		cancel()
		if err == nil || ctx.Err() != nil || !yielded {
			return // read to the end, stopped, or failed on its own (retrying at once would spin)
		}
	}
}

func (e *entry) stopPrefetch() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.prefetch != nil {
		e.prefetch()
		e.prefetch = nil
	}
}

// registry is the set of torrents the gateway serves.
type registry struct {
	mu sync.RWMutex
	m  map[metainfo.Hash]*entry
}

func newRegistry() *registry { return &registry{m: make(map[metainfo.Hash]*entry)} }

func (r *registry) get(ih metainfo.Hash) (*entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.m[ih]
	return e, ok
}

// put stores e unless the infohash is there already; it returns the stored entry.
func (r *registry) put(e *entry) (*entry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ih := e.t.InfoHash()
	if old, ok := r.m[ih]; ok {
		return old, false
	}
	r.m[ih] = e
	return e, true
}

func (r *registry) remove(ih metainfo.Hash) (*entry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[ih]
	delete(r.m, ih)
	return e, ok
}

// list returns the entries oldest first.
func (r *registry) list() []*entry {
	r.mu.RLock()
	out := make([]*entry, 0, len(r.m))
	for _, e := range r.m {
		out = append(out, e)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].added.Before(out[j].added) })
	return out
}

func (r *registry) closeAll() {
	for _, e := range r.list() {
		e.stopPrefetch()
	}
}
