// Package piececache bounds what downloaded torrents take on disk: an anacrolix storage that keeps
// each torrent's files under Dir/<infohash>/ and evicts least-recently-used pieces of torrents
// nobody watches when a new piece needs room.
//
// Design: our own wrapper around anacrolix's file storage, not its capacity-bounded resource
// storage. v1.61.0's TorrentCapacity only limits how much the request strategy asks for; the
// eviction itself lives in an LRU blob store (missinggo's file cache, possum, sqlite) that deletes
// pieces without knowing which torrents have viewers, stores each piece as its own blob instead of
// the torrent's files, and would mean a new dependency and a new data layout. The wrapper keeps
// the torrent's files and the piece completion store, and sees every piece read and write, which
// is all an LRU needs:
//
//   - A piece takes room when its first chunk is written: the write reserves the whole piece (its
//     file blocks), evicting least-recently-used pieces of unwatched torrents first. When only
//     watched torrents are left to evict from, the write fails with ErrFull, which anacrolix
//     treats like any write error (the chunk is requested again later). So the accounted size
//     never exceeds the cap.
//   - Victims are chosen under the cache's lock, which only does arithmetic: a heap over the
//     candidates, not a sort of every piece. Their disk work (the completion store's write and
//     fsync, the punched hole) runs after the lock is released, by the write that needed the
//     room, so that other pieces' writes and reads never wait behind it. Until that work is done
//     the disk can hold the victims' bytes beside what has been reserved in their place: the
//     cap bounds what is accounted, the disk lags it by the evictions in flight.
//   - Evicting a piece marks it not complete in the completion store first, then punches its byte
//     range out of the files (fallocate PUNCH_HOLE), then reports it (Config.OnEvicted) so that
//     anacrolix re-reads its completion. A crash in between leaves a piece that is downloaded
//     again, never a complete piece with a hole. A reader that raced the eviction gets ErrEvicted,
//     not zeros; anacrolix then re-syncs the piece's completion and fetches it again, and every
//     piece fetched is verified against its hash before it counts as complete.
//   - Part files are off: a promoted file would count as complete on the next start whatever holes
//     it has. Completion lives only in the (persistent) completion store.
//
// What the cap counts: the file blocks the pieces' bytes touch (4 KiB each).
package piececache

import (
	"container/heap"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

var (
	// ErrFull is the write error when every evictable byte is in use by watched torrents.
	ErrFull = errors.New("cache full: the pieces on disk all belong to torrents being watched")
	// ErrEvicted is what a read of a piece that was evicted under it returns.
	ErrEvicted = errors.New("piece was evicted from the cache")
	// ErrInvalidConfig wraps every problem Config.Validate reports.
	ErrInvalidConfig = errors.New("invalid piece cache config")
	// errClosed is a write to a torrent whose storage has closed.
	errClosed = errors.New("torrent storage closed")
)

const block = 4096

// Config is what a Cache is made of. Start from DefaultConfig.
type Config struct {
	// Dir holds a folder per torrent, named by its infohash.
	Dir string
	// Capacity bounds the bytes pieces take, in file blocks; 0 is unlimited.
	Capacity int64
	// Completion records which pieces are complete; the cache marks evicted pieces incomplete.
	Completion storage.PieceCompletion
	// Watched says whether a torrent has viewers now: its pieces are then never evicted. nil: no
	// torrent is watched.
	Watched func(metainfo.Hash) bool
	// CheckInfo vets a torrent's info before its storage opens (metadata from peers comes here
	// first); its error is OpenTorrent's. nil: every info is taken.
	CheckInfo func(*metainfo.Info) error
	// OnWriteError and OnWriteOK report the state of a torrent's disk writes; nil: not reported.
	OnWriteError func(metainfo.Hash, error)
	OnWriteOK    func(metainfo.Hash)
	// OnEvicted is told which pieces of a torrent lost their data. It is called inside storage
	// writes, where anacrolix may hold its client lock: it must only queue. nil: not told.
	OnEvicted func(metainfo.Hash, []int)
}

// DefaultConfig is an unlimited cache; Dir and Completion are the caller's to set.
func DefaultConfig() Config { return Config{} }

// Validate reports every unusable field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}
	if c.Dir == "" {
		bad("Dir", "is empty")
	}
	if c.Capacity < 0 {
		bad("Capacity", "is %d: must be 0 (unlimited) or positive", c.Capacity)
	}
	if c.Completion == nil {
		bad("Completion", "is nil")
	}
	return errors.Join(errs...)
}

// Cache is the bookkeeping of every open torrent's pieces; Storage is what anacrolix uses.
type Cache struct {
	cfg         Config
	log         *slog.Logger
	punchWarned atomic.Bool

	mu           sync.Mutex
	capacity     int64
	used         int64
	torrents     map[metainfo.Hash]*cachedTorrent
	evictions    atomic.Int64
	evictedBytes atomic.Int64
}

// New makes a cache. A nil log discards.
func New(cfg Config, log *slog.Logger) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{cfg: cfg, log: log, capacity: cfg.Capacity, torrents: map[metainfo.Hash]*cachedTorrent{}}, nil
}

// TorrentDir is where a torrent's files go below dir: a folder named by its infohash, so that two
// torrents with the same name never share files.
func TorrentDir(dir string, ih metainfo.Hash) string { return filepath.Join(dir, ih.HexString()) }

type cachedTorrent struct {
	ih     metainfo.Hash
	info   *metainfo.Info
	files  []cachedFile
	pieces []cachedPiece
}

type cachedFile struct {
	path           string
	offset, length int64 // in the torrent
}

type cachedPiece struct {
	mu         sync.RWMutex // readers and writers share; eviction's disk work excludes them
	resident   atomic.Bool  // counted in used; changed with Cache.mu held
	evicted    atomic.Bool  // data punched out since the last write
	lastAccess atomic.Int64 // unix nanos
}

// open reconciles a torrent's files with the completion store: a piece counts as on disk when the
// store says complete and its files are long enough; every other piece is punched out, so that
// what the cache counts is what the disk holds. (anacrolix keeps no partial pieces across
// restarts anyway.) The store and the disk are read before the cache's lock is taken.
func (c *Cache) open(ct *cachedTorrent) error {
	sizes := make([]int64, len(ct.files))
	paths := map[string]bool{}
	for _, f := range ct.files {
		paths[f.path] = true
	}
	for i, f := range ct.files {
		// Leftovers of part-file storage (gateways before the cache) are never read again.
		if !paths[f.path+".part"] {
			os.Remove(f.path + ".part")
		}
		sizes[i] = -1
		if st, err := os.Stat(f.path); err == nil && st.Mode().IsRegular() {
			sizes[i] = st.Size()
		}
	}
	now := time.Now().UnixNano()
	var stale []int
	var used int64
	for i := range ct.pieces {
		p := &ct.pieces[i]
		p.lastAccess.Store(now)
		key := metainfo.PieceKey{InfoHash: ct.ih, Index: i}
		cmpl, err := c.cfg.Completion.Get(key)
		if err != nil {
			return fmt.Errorf("piece completion: %w", err)
		}
		onDisk := cmpl.Ok && cmpl.Complete
		if onDisk {
			for fi, ext := range ct.pieceFileExtents(i) {
				if sizes[fi] < ext.end {
					onDisk = false
				}
			}
		}
		if onDisk {
			p.resident.Store(true)
			used += ct.charge(i)
			continue
		}
		if cmpl.Ok && cmpl.Complete {
			if err := c.cfg.Completion.Set(key, false); err != nil {
				return fmt.Errorf("piece completion: %w", err)
			}
		}
		stale = append(stale, i)
	}
	// Punch runs of pieces not on disk out of files that exist. No write reaches this torrent
	// before OpenTorrent returns.
	for len(stale) > 0 {
		j := 1
		for j < len(stale) && stale[j] == stale[j-1]+1 {
			j++
		}
		c.punch(ct, stale[0], stale[j-1]+1)
		stale = stale[j:]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.torrents[ct.ih]; ok {
		c.dropLocked(old)
	}
	c.torrents[ct.ih] = ct
	c.used += used
	return nil
}

func (c *Cache) forget(ct *cachedTorrent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.torrents[ct.ih] == ct {
		c.dropLocked(ct)
	}
}

func (c *Cache) dropLocked(ct *cachedTorrent) {
	for i := range ct.pieces {
		if ct.pieces[i].resident.Load() {
			ct.pieces[i].resident.Store(false)
			c.used -= ct.charge(i)
		}
	}
	delete(c.torrents, ct.ih)
}

type fileExtent struct{ start, end int64 } // in the file

// pieceFileExtents yields, per file index, the part of the file piece i covers.
func (ct *cachedTorrent) pieceFileExtents(i int) map[int]fileExtent {
	return ct.rangeFileExtents(int64(i)*ct.info.PieceLength, min(int64(i+1)*ct.info.PieceLength, ct.info.TotalLength()))
}

func (ct *cachedTorrent) rangeFileExtents(start, end int64) map[int]fileExtent {
	out := map[int]fileExtent{}
	// Files are in torrent order: start at the first one that ends after start.
	first := sort.Search(len(ct.files), func(i int) bool { return ct.files[i].offset+ct.files[i].length > start })
	for fi := first; fi < len(ct.files) && ct.files[fi].offset < end; fi++ {
		f := ct.files[fi]
		s, e := max(start, f.offset), min(end, f.offset+f.length)
		if s < e {
			out[fi] = fileExtent{s - f.offset, e - f.offset}
		}
	}
	return out
}

// charge is what piece i can take on disk: the file blocks its bytes touch.
func (ct *cachedTorrent) charge(i int) int64 {
	var n int64
	for _, ext := range ct.pieceFileExtents(i) {
		n += roundUp(ext.end) - ext.start/block*block
	}
	return n
}

func roundUp(n int64) int64 { return (n + block - 1) / block * block }

// pieceAt is the index of the piece holding torrent byte off.
func (ct *cachedTorrent) pieceAt(off int64) int { return int(off / ct.info.PieceLength) }

// punch frees pieces [from, to) on disk. The range goes out to whole blocks on a side whose
// neighbouring piece holds no data, so that no block stays allocated for nothing. (A neighbour
// that becomes resident meanwhile is written after the punch: its own write takes its bytes.)
func (c *Cache) punch(ct *cachedTorrent, from, to int) {
	start := int64(from) * ct.info.PieceLength
	end := min(int64(to)*ct.info.PieceLength, ct.info.TotalLength())
	for fi, ext := range ct.rangeFileExtents(start, end) {
		f := ct.files[fi]
		s, e := ext.start, ext.end
		if s%block != 0 && !ct.pieces[ct.pieceAt(f.offset+s/block*block)].resident.Load() {
			s = s / block * block
		}
		if e%block != 0 {
			// Past the end of the file the block holds nothing; before it, the next piece's bytes.
			if e >= f.length || !ct.pieces[ct.pieceAt(f.offset+min(roundUp(e), f.length)-1)].resident.Load() {
				e = roundUp(e)
			}
		}
		if err := punchFile(f.path, s, e-s); err != nil && !errors.Is(err, fs.ErrNotExist) {
			if !errors.Is(err, errPunchUnsupported) {
				c.log.Warn("freeing evicted piece data", "file", f.path, "err", err)
			} else if c.punchWarned.CompareAndSwap(false, true) {
				c.log.Warn("this file system cannot punch holes: evicted pieces keep their disk blocks, the cache's capacity cannot free them", "file", f.path, "err", err)
			}
		}
	}
}

// victim is a piece chosen for eviction: no longer counted, its disk work still to do.
type victim struct {
	t    *cachedTorrent
	i    int
	last int64
}

// reserve makes room for piece i before its first write.
func (c *Cache) reserve(ct *cachedTorrent, i int) error {
	c.mu.Lock()
	p := &ct.pieces[i]
	if p.resident.Load() {
		c.mu.Unlock()
		return nil
	}
	if c.torrents[ct.ih] != ct {
		c.mu.Unlock()
		return errClosed
	}
	need := ct.charge(i)
	victims, err := c.chooseVictimsLocked(need, ct, i)
	if err == nil {
		p.resident.Store(true)
		c.used += need
	}
	c.mu.Unlock()
	c.evict(victims)
	return err
}

// Trim evicts until the cache fits its capacity (after a restart with a smaller one).
func (c *Cache) Trim() {
	c.mu.Lock()
	victims, _ := c.chooseVictimsLocked(0, nil, -1)
	c.mu.Unlock()
	c.evict(victims)
}

// SetCapacity changes the bound; pieces over it are evicted as writes need room, or by Trim.
func (c *Cache) SetCapacity(capacity int64) {
	c.mu.Lock()
	c.capacity = capacity
	c.mu.Unlock()
}

// victimHeap orders candidates least recently used first.
type victimHeap []victim

func (h victimHeap) Len() int           { return len(h) }
func (h victimHeap) Less(a, b int) bool { return h[a].last < h[b].last }
func (h victimHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *victimHeap) Push(x any)        { *h = append(*h, x.(victim)) }
func (h *victimHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}

// chooseVictimsLocked picks least-recently-used pieces of unwatched torrents until need more bytes
// fit, and stops counting them. Piece (self, selfIndex) is the one being written and is never a
// victim. The caller does their disk work (evict) once the lock is released.
func (c *Cache) chooseVictimsLocked(need int64, self *cachedTorrent, selfIndex int) ([]victim, error) {
	if c.capacity <= 0 || c.used+need <= c.capacity {
		return nil, nil
	}
	var candidates victimHeap
	for _, ct := range c.torrents {
		if c.cfg.Watched != nil && c.cfg.Watched(ct.ih) {
			continue
		}
		for i := range ct.pieces {
			p := &ct.pieces[i]
			if !p.resident.Load() || (ct == self && i == selfIndex) {
				continue
			}
			candidates = append(candidates, victim{ct, i, p.lastAccess.Load()})
		}
	}
	heap.Init(&candidates) // O(n); each pick is O(log n): the few picks never sort the rest
	// Free a little more than asked, so that a cache at its cap does not scan every piece for
	// every piece written.
	target := c.capacity - min(c.capacity/32, 64<<20)
	var victims []victim
	for candidates.Len() > 0 && c.used+need > target {
		v := heap.Pop(&candidates).(victim)
		v.t.pieces[v.i].resident.Store(false)
		c.used -= v.t.charge(v.i)
		victims = append(victims, v)
	}
	if c.used+need > c.capacity {
		return victims, fmt.Errorf("%w (capacity %d bytes)", ErrFull, c.capacity)
	}
	return victims, nil
}

// evict does the victims' disk work, without the cache's lock, and reports the pieces evicted.
func (c *Cache) evict(victims []victim) {
	evicted := map[metainfo.Hash][]int{}
	for _, v := range victims {
		ok, err := c.evictPiece(v.t, v.i)
		if err != nil {
			c.log.Warn("evicting piece", "infohash", v.t.ih.HexString(), "piece", v.i, "err", err)
		}
		if ok {
			evicted[v.t.ih] = append(evicted[v.t.ih], v.i)
		}
	}
	if c.cfg.OnEvicted == nil {
		return
	}
	for ih, pieces := range evicted {
		c.cfg.OnEvicted(ih, pieces)
	}
}

// evictPiece frees piece i, chosen as a victim: not complete in the store first, then the bytes,
// so that no crash leaves a complete piece with a hole. It does nothing if a write has reserved
// the piece again since it was chosen (its bytes are counted again, and may be new).
func (c *Cache) evictPiece(ct *cachedTorrent, i int) (bool, error) {
	p := &ct.pieces[i]
	p.mu.Lock() // wait for reads and writes of this piece to finish
	defer p.mu.Unlock()
	if p.resident.Load() {
		return false, nil
	}
	if err := c.cfg.Completion.Set(metainfo.PieceKey{InfoHash: ct.ih, Index: i}, false); err != nil {
		// Still complete in the store and its bytes untouched: count it again, over the cap
		// rather than lose track of bytes on disk.
		c.mu.Lock()
		if !p.resident.Load() && c.torrents[ct.ih] == ct {
			p.resident.Store(true)
			c.used += ct.charge(i)
		}
		c.mu.Unlock()
		return false, err
	}
	p.evicted.Store(true)
	c.punch(ct, i, i+1)
	c.evictions.Add(1)
	c.evictedBytes.Add(ct.charge(i))
	return true, nil
}

// Stats is what the cache holds and has evicted.
type Stats struct {
	Used, Capacity          int64
	Evictions, EvictedBytes int64
}

func (c *Cache) Stats() Stats {
	c.mu.Lock()
	used, capacity := c.used, c.capacity
	c.mu.Unlock()
	return Stats{Used: used, Capacity: capacity, Evictions: c.evictions.Load(), EvictedBytes: c.evictedBytes.Load()}
}
