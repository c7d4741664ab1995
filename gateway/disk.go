package gateway

import (
	"sync"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmgate/swarmgate/registry"
)

// What the gateway does around its piece cache (package piececache): re-syncing anacrolix when
// pieces are evicted and trimming the cache to its capacity. Write errors and idle torrents are
// the registry's (package registry).

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
			if !ok || !registry.HasInfo(t) {
				continue
			}
			for _, i := range pieces {
				t.Piece(i).UpdateCompletion()
			}
		}
	}
}

// every runs fn every d until the gateway stops: its background loops (g.wg counts them).
func (g *Gateway) every(d time.Duration, fn func()) {
	defer g.wg.Done()
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-tick.C:
			fn()
		}
	}
}
