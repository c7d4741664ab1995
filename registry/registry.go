// Package registry is the set of torrents a gateway serves and their lifecycle: adding (spec,
// magnet peers, files seeded in place), fetching ahead in order while someone watches and stopping
// when nobody does, pausing after disk write errors, dropping torrents idle for too long, and
// persistence (state.json and each torrent's metainfo), so that a restart serves the same
// torrents without asking peers for their metadata again.
//
// It knows torrents and viewers, not HTTP: the gateway reports reads (Touch, CountHTTP, the
// reader gate) and WebRTC connections, and hears about added and removed torrents through
// Config's hooks (its tracker joins and leaves swarms there).
package registry

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

var (
	// ErrInvalidConfig is what every problem Validate reports matches with errors.Is.
	ErrInvalidConfig = errors.New("invalid registry config")
	// ErrClosed means the registry is closed: nothing is added any more.
	ErrClosed = errors.New("registry closed")
	// ErrBadTorrent means a torrent's description cannot be served: unsafe paths, piece hashes
	// that do not match its files, or a spec anacrolix refuses.
	ErrBadTorrent = errors.New("bad torrent")
)

// Config is what a Registry needs. Start from DefaultConfig: a zero duration means zero.
type Config struct {
	// Client is the torrent client the torrents live in. Required.
	Client *torrent.Client
	// Completion is the persistent record of verified pieces; files seeded in place keep theirs
	// in it too, so a restart does not hash them again. Required.
	Completion storage.PieceCompletion
	// StateDir holds state.json and metainfo/. Required.
	StateDir string
	// DataDir is where torrents whose data the registry owns keep it (one folder per infohash,
	// see piececache.TorrentDir): Remove with deleteData and idle drops delete there. Required.
	DataDir string
	// ViewerLinger is how long an HTTP read counts as someone watching.
	ViewerLinger time.Duration
	// IdleTimeout drops a torrent whose data the registry owns when nobody watched it this long,
	// with its data (0 = never).
	IdleTimeout time.Duration
	// WriteRetry is how long downloading stays paused after a failed write.
	WriteRetry time.Duration
	// Tick is how often rates are sampled and demand, paused writes and idleness looked at.
	Tick time.Duration
	// Playable says whether a file is one a page would play (video or audio): pages' warm-up
	// fetches only those. Nil: every file.
	Playable func(name string) bool
	// Added and Removed are told of each torrent that enters and leaves the registry (not of an
	// Add of a torrent already there). They must not call back into the registry's Add or Remove.
	Added, Removed func(*Entry)
}

// DefaultConfig returns the timings a gateway uses; the required fields are for the caller.
func DefaultConfig() Config {
	return Config{
		ViewerLinger: 30 * time.Second,
		IdleTimeout:  24 * time.Hour,
		WriteRetry:   10 * time.Second,
		Tick:         time.Second,
	}
}

// Validate reports every field that cannot work, each naming the field, all matching
// ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}
	if c.Client == nil {
		bad("Client", "must be set")
	}
	if c.Completion == nil {
		bad("Completion", "must be set")
	}
	if c.StateDir == "" {
		bad("StateDir", "must be set")
	}
	if c.DataDir == "" {
		bad("DataDir", "must be set")
	}
	if c.IdleTimeout < 0 {
		bad("IdleTimeout", "%v: must be 0 (never) or positive", c.IdleTimeout)
	}
	for _, d := range []struct {
		field string
		d     time.Duration
	}{{"ViewerLinger", c.ViewerLinger}, {"WriteRetry", c.WriteRetry}, {"Tick", c.Tick}} {
		if d.d <= 0 {
			bad(d.field, "%v: must be positive", d.d)
		}
	}
	return errors.Join(errs...)
}

// Registry is the set of torrents a gateway serves. Its methods are safe for concurrent use.
type Registry struct {
	cfg Config
	log *slog.Logger

	mu sync.RWMutex
	m  map[metainfo.Hash]*Entry

	stateMu     sync.Mutex // serialises state.json writes
	droppedIdle atomic.Int64

	stop      chan struct{}
	nudge     chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New starts a registry (its maintenance runs until Close). It holds no torrents until Restore
// or Add; a nil log discards.
func New(cfg Config, log *slog.Logger) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Playable == nil {
		cfg.Playable = func(string) bool { return true }
	}
	r := &Registry{
		cfg:   cfg,
		log:   log,
		m:     make(map[metainfo.Hash]*Entry),
		stop:  make(chan struct{}),
		nudge: make(chan struct{}, 1),
	}
	r.wg.Add(1)
	go r.maintain()
	return r, nil
}

// Get returns the torrent with infohash ih.
func (r *Registry) Get(ih metainfo.Hash) (*Entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.m[ih]
	return e, ok
}

// List returns the torrents oldest first.
func (r *Registry) List() []*Entry {
	r.mu.RLock()
	out := make([]*Entry, 0, len(r.m))
	for _, e := range r.m {
		out = append(out, e)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].added.Before(out[j].added) })
	return out
}

// Len is how many torrents the registry holds.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.m)
}

// DroppedIdle counts the torrents dropped for IdleTimeout.
func (r *Registry) DroppedIdle() int64 { return r.droppedIdle.Load() }

// put stores e unless the infohash is there already; it returns the stored entry.
func (r *Registry) put(e *Entry) (*Entry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ih := e.t.InfoHash()
	if old, ok := r.m[ih]; ok {
		return old, false
	}
	r.m[ih] = e
	return e, true
}

func (r *Registry) take(ih metainfo.Hash) (*Entry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[ih]
	delete(r.m, ih)
	return e, ok
}

// DemandChanged asks for demand to be looked at now rather than at the next tick. It never
// blocks, so anacrolix callbacks may call it under their lock.
func (r *Registry) DemandChanged() {
	select {
	case r.nudge <- struct{}{}:
	default:
	}
}

// maintain samples rates, switches in-order prefetching on and off with demand, resumes paused
// downloads and drops idle torrents.
func (r *Registry) maintain() {
	defer r.wg.Done()
	tick := time.NewTicker(r.cfg.Tick)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-r.nudge:
			now := time.Now()
			for _, e := range r.List() {
				r.updateDemand(e, now)
			}
		case now := <-tick.C:
			for _, e := range r.List() {
				e.sampleRates(now)
				r.updateDemand(e, now)
				r.retryWrites(e, now)
				r.dropIfIdle(e, now)
			}
		}
	}
}

// Close stops maintenance and every prefetch; the torrents stay in the client, which the caller
// closes. Add fails with ErrClosed from now on. It is safe to call more than once.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		close(r.stop)
		for _, e := range r.List() {
			e.stopPrefetch()
		}
		r.wg.Wait()
	})
	return nil
}

// closed reports whether Close has begun.
func (r *Registry) closed() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// HasInfo reports whether a torrent's metadata is fully set up. anacrolix sets Info before it
// builds the file list; GotInfo closes after, so only it says that Files is safe to call.
func HasInfo(t *torrent.Torrent) bool {
	select {
	case <-t.GotInfo():
		return true
	default:
		return false
	}
}

// safePathPart is a file or folder name that stays inside its parent.
func safePathPart(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\\x00")
}
