package gateway

import (
	"sync"
	"time"

	"github.com/anacrolix/torrent/metainfo"
)

// What the gateway does around its piece cache (package piececache): re-syncing anacrolix when
// pieces are evicted, pausing a torrent whose disk writes fail, dropping idle torrents.

// resyncQueue carries evicted pieces from the cache, which may run inside a storage write, to a
// goroutine that tells anacrolix (which takes its lock) outside of any storage call.
type resyncQueue struct {
	mu      sync.Mutex
	pending map[metainfo.Hash][]int
	wake    chan struct{}
}

func (q *resyncQueue) add(ih metainfo.Hash, pieces []int) {
	q.mu.Lock()
	if q.pending == nil {
		q.pending = map[metainfo.Hash][]int{}
	}
	q.pending[ih] = append(q.pending[ih], pieces...)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *resyncQueue) take() map[metainfo.Hash][]int {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.pending
	q.pending = nil
	return p
}

// resyncEvicted makes anacrolix re-read the completion of evicted pieces, so that it stops
// offering them and fetches them again when they are wanted.
func (g *Gateway) resyncEvicted() {
	defer g.wg.Done()
	for {
		select {
		case <-g.stop:
			return
		case <-g.resync.wake:
		}
		for ih, pieces := range g.resync.take() {
			t, ok := g.client.Torrent(ih)
			if !ok || !hasInfo(t) {
				continue
			}
			for _, i := range pieces {
				t.Piece(i).UpdateCompletion()
			}
		}
	}
}

// onWriteError is called by the cache when a piece write fails, and by anacrolix for every chunk
// it could not store. Downloading pauses for the torrent (anacrolix would otherwise fetch the
// same chunks again at once) and the error shows in the API until a write succeeds.
func (g *Gateway) onWriteError(ih metainfo.Hash, err error) {
	e, ok := g.torrents.get(ih)
	if !ok {
		return
	}
	if e.recordDiskError(err) {
		g.log.Error("disk write failed; downloading paused for this torrent", "infohash", ih.HexString(),
			"retry_in", g.cfg.writeRetry, "err", err)
	}
}

// retryWrites lets a torrent whose writes failed download again after writeRetry.
func (g *Gateway) retryWrites(e *entry, now time.Time) {
	if at, paused := e.downloadPaused(); paused && now.Sub(at) >= g.cfg.writeRetry {
		e.resumeDownload()
	}
}

// dropIfIdle drops a downloaded torrent nobody watched for --idle-timeout, with its data.
func (g *Gateway) dropIfIdle(e *entry, now time.Time) {
	if g.cfg.IdleTimeout <= 0 || !e.ownsData() || e.src.ephemeral || e.watched(now, g.cfg.ViewerLinger) {
		return
	}
	idle := now.Sub(time.Unix(0, e.lastWatched.Load()))
	if idle < g.cfg.IdleTimeout {
		return
	}
	ih := e.t.InfoHash()
	g.log.Info("dropping idle torrent", "infohash", ih.HexString(), "name", e.t.Name(), "idle", idle.Round(time.Second))
	if err := g.remove(ih, true); err != nil {
		g.log.Warn("dropping idle torrent", "infohash", ih.HexString(), "err", err)
	}
	g.droppedIdle.Add(1)
}
