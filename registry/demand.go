package registry

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/anacrolix/torrent"
)

// prefetchReadahead is how far ahead of its position the in-order prefetcher asks for pieces.
const prefetchReadahead = 32 << 20

// PageWarmBytes is how much of a file a watch or embed page has fetched for its player: the first
// pieces, so that playback starts without waiting on the swarm. The rest waits for a player to
// read, since link-preview bots open pages too.
const PageWarmBytes = 2 << 20

// updateDemand fetches a watched torrent (or one added to be fetched whole) ahead in order, and
// stops when nobody watches it.
func (r *Registry) updateDemand(e *Entry, now time.Time) {
	r.trackViewers(e, now)
	if !HasInfo(e.t) {
		return
	}
	watched := (e.Watched(now) || e.fetchAll.Load()) && !e.t.Complete().Bool()
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case watched && e.prefetch == nil:
		if r.closed() {
			return // Close is stopping prefetches; starting one now would outlive it
		}
		if len(e.t.PeerConns()) == 0 {
			addDirectPeers(e.t, e.directPeers)
		}
		ctx, cancel := context.WithCancel(context.Background())
		e.prefetch = cancel
		e.t.DownloadAll()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
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

// trackViewers keeps lastWatched, and saves it when the last viewer leaves, so that IdleTimeout
// counts across restarts.
func (r *Registry) trackViewers(e *Entry, now time.Time) {
	w := e.Watched(now)
	if w {
		e.lastWatched.Store(now.UnixNano())
	}
	e.mu.Lock()
	left := e.wasWatched && !w
	e.wasWatched = w
	e.mu.Unlock()
	if left && !e.src.Ephemeral {
		r.saveState()
	}
}

// PageView is a watch or embed page opened: fetch the first pieces of the file it would play
// (see warm), now or once the metadata is here. It is not a viewer: only reading (/stream,
// /webseed, a WebRTC peer) starts fetching the whole torrent.
func (e *Entry) PageView(file int) {
	if !e.t.Complete().Bool() && len(e.t.PeerConns()) == 0 {
		addDirectPeers(e.t, e.directPeers)
	}
	// Filed before looking at the metadata: if it arrives in between, gotInfo takes it.
	e.mu.Lock()
	e.warmFile, e.warmPending = file, true
	e.mu.Unlock()
	if HasInfo(e.t) {
		e.gotInfo()
	}
}

// gotInfo warms the file of a page opened before the metadata came, if any.
func (e *Entry) gotInfo() {
	e.mu.Lock()
	file, pending := e.warmFile, e.warmPending
	e.warmPending = false
	e.mu.Unlock()
	if pending {
		e.warm(file)
	}
}

// warm asks for the pieces holding the first PageWarmBytes of a page's file: file, or with
// file < 0 the largest playable file (the page prefers one the browser plays, which it alone
// knows). A file that is not playable gets nothing: the page will not play it.
func (e *Entry) warm(file int) {
	files := e.t.Files()
	var f *torrent.File
	if file >= 0 && file < len(files) {
		f = files[file]
	} else if file < 0 {
		for _, c := range files {
			if e.playable(c.DisplayPath()) && (f == nil || c.Length() > f.Length()) {
				f = c
			}
		}
	}
	if f == nil || f.Length() == 0 || !e.playable(f.DisplayPath()) {
		return
	}
	pl := e.t.Info().PieceLength
	end := int((f.Offset()+min(f.Length(), PageWarmBytes)-1)/pl) + 1
	e.t.DownloadPieces(f.BeginPieceIndex(), end)
}

// ReaderOpened tells the registry an HTTP reader of the torrent opened: the in-order prefetch
// steps aside until ReaderClosed balances it (see prefetchGate).
func (e *Entry) ReaderOpened() { e.gate.readerOpened() }

// ReaderClosed balances ReaderOpened.
func (e *Entry) ReaderClosed() { e.gate.readerClosed() }

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

func (e *Entry) stopPrefetch() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.prefetch != nil {
		e.prefetch()
		e.prefetch = nil
	}
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
