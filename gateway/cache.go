package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// The piece cache bounds what downloaded torrents take on disk (--cache-size).
//
// Design: our own wrapper around anacrolix's file storage, not its capacity-bounded resource
// storage. v1.61.0's TorrentCapacity only limits how much the request strategy asks for; the
// eviction itself lives in an LRU blob store (missinggo's file cache, possum, sqlite) that deletes
// pieces without knowing which torrents have viewers, stores each piece as its own blob instead of
// the torrent's files, and would mean a new dependency and a new data layout. The wrapper keeps
// the files under torrents/<infohash>/ and the piece completion store we already have, and sees
// every piece read and write, which is all an LRU needs:
//
//   - A piece takes room when its first chunk is written: the write reserves the whole piece (its
//     file blocks), evicting least-recently-used pieces of torrents nobody watches first. When
//     only watched torrents are left to evict from, the write fails with errCacheFull, which
//     anacrolix treats like any write error (the chunk is requested again later). So the
//     accounted size never exceeds the cap.
//   - Evicting a piece marks it not complete in the completion store first, then punches its
//     byte range out of the files (fallocate PUNCH_HOLE), then tells anacrolix to re-read its
//     completion. A crash in between leaves a piece that is downloaded again, never a complete
//     piece with a hole. A reader that raced the eviction gets an error, not zeros, and anacrolix
//     then re-syncs the piece's completion and fetches it again; every piece fetched is verified
//     against its hash before it counts as complete.
//   - Part files are off for this storage: a promoted file would count as complete on the next
//     start whatever holes it has. Completion lives only in the (persistent) completion store.
//   - Seeded-in-place torrents and the demo use their own storage and are never in the cache.
//
// What the cap counts: the blocks of the files under torrents/ (piece state, metainfo and the demo
// video live elsewhere and are small). Data kept by DELETE without ?data=1 leaves the cache.

// errCacheFull is the write error when every evictable byte is in use by watched torrents.
var errCacheFull = errors.New("cache full: the pieces on disk all belong to torrents being watched; raise --cache-size")

// errEvicted is what a read of a piece that was evicted under it returns.
var errEvicted = errors.New("piece was evicted from the cache")

const cacheBlock = 4096

type cache struct {
	baseDir    string // torrents/ below the data dir
	capacity   int64  // 0 = unlimited; read with mu held (tests lower it)
	completion storage.PieceCompletion
	// watched says whether a torrent has viewers now; its pieces are then never evicted.
	watched func(metainfo.Hash) bool
	// onWriteErr and onWriteOK report the state of a torrent's disk writes.
	onWriteErr func(metainfo.Hash, error)
	onWriteOK  func(metainfo.Hash)
	// evicted is told which pieces lost their data, to re-sync anacrolix (never called with mu held
	// by a caller that holds anacrolix's lock: it only queues).
	evicted func(metainfo.Hash, []int)
	logf    func(msg string, args ...any)

	mu           sync.Mutex
	used         int64
	torrents     map[metainfo.Hash]*cachedTorrent
	evictions    atomic.Int64
	evictedBytes atomic.Int64
	punchWarned  bool
}

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
	mu         sync.RWMutex // readers and writers share; eviction excludes them
	resident   atomic.Bool  // counted in used; changed with cache.mu and (to false) mu held
	evicted    atomic.Bool  // data punched out since the last write
	lastAccess atomic.Int64 // unix nanos
}

// cacheStorage is the storage of torrents the gateway downloads.
type cacheStorage struct {
	inner storage.ClientImplCloser
	c     *cache
}

func filePathFor(opts storage.FilePathMakerOpts) string {
	var parts []string
	if opts.Info.BestName() != metainfo.NoName {
		parts = append(parts, opts.Info.BestName())
	}
	return filepath.Join(append(parts, opts.File.BestPath()...)...)
}

func newCacheStorage(baseDir string, c *cache) *cacheStorage {
	return &cacheStorage{
		c: c,
		inner: storage.NewFileOpts(storage.NewFileClientOpts{
			ClientBaseDir:   baseDir,
			TorrentDirMaker: torrentDir,
			FilePathMaker:   filePathFor,
			PieceCompletion: c.completion,
			UsePartFiles:    g.Some(false),
		}),
	}
}

func (s *cacheStorage) Close() error { return s.inner.Close() }

func (s *cacheStorage) OpenTorrent(ctx context.Context, info *metainfo.Info, ih metainfo.Hash) (storage.TorrentImpl, error) {
	// Also metadata from peers (a magnet) comes here, before anything else looks at it.
	if err := checkPieceCount(info); err != nil {
		return storage.TorrentImpl{}, err
	}
	impl, err := s.inner.OpenTorrent(ctx, info, ih)
	if err != nil {
		return impl, err
	}
	dir := torrentDir(s.baseDir(), info, ih)
	ct := &cachedTorrent{ih: ih, info: info, pieces: make([]cachedPiece, info.NumPieces())}
	for _, fi := range info.UpvertedFiles() {
		ct.files = append(ct.files, cachedFile{
			path:   filepath.Join(dir, filePathFor(storage.FilePathMakerOpts{Info: info, File: &fi})),
			offset: fi.TorrentOffset,
			length: fi.Length,
		})
	}
	if err := s.c.open(ct); err != nil {
		return impl, err
	}
	innerPiece, innerClose := impl.Piece, impl.Close
	impl.Piece = func(p metainfo.Piece) storage.PieceImpl {
		return &cachePieceImpl{PieceImpl: innerPiece(p), c: s.c, t: ct, i: p.Index()}
	}
	impl.Close = func() error {
		s.c.forget(ct)
		if innerClose != nil {
			return innerClose()
		}
		return nil
	}
	return impl, nil
}

func (s *cacheStorage) baseDir() string {
	// torrentDir ignores info; the base dir is what NewFileOpts was given.
	return s.c.baseDir
}

// open reconciles a torrent's files with the completion store: a piece counts as on disk when the
// store says complete and its files are long enough; every other piece is punched out, so that
// what the cache counts is what the disk holds. (anacrolix keeps no partial pieces across
// restarts anyway.)
func (c *cache) open(ct *cachedTorrent) error {
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.torrents[ct.ih]; ok {
		c.dropLocked(old)
	}
	now := time.Now().UnixNano()
	var stale []int
	for i := range ct.pieces {
		p := &ct.pieces[i]
		p.lastAccess.Store(now)
		key := metainfo.PieceKey{InfoHash: ct.ih, Index: i}
		cmpl, err := c.completion.Get(key)
		if err != nil {
			c.dropLocked(ct)
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
			c.used += ct.charge(i)
			continue
		}
		if cmpl.Ok && cmpl.Complete {
			if err := c.completion.Set(key, false); err != nil {
				c.dropLocked(ct)
				return fmt.Errorf("piece completion: %w", err)
			}
		}
		stale = append(stale, i)
	}
	c.torrents[ct.ih] = ct
	// Punch runs of pieces not on disk out of files that exist.
	for len(stale) > 0 {
		j := 1
		for j < len(stale) && stale[j] == stale[j-1]+1 {
			j++
		}
		c.punchLocked(ct, stale[0], stale[j-1]+1)
		stale = stale[j:]
	}
	return nil
}

func (c *cache) forget(ct *cachedTorrent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.torrents[ct.ih] == ct {
		c.dropLocked(ct)
	}
}

func (c *cache) dropLocked(ct *cachedTorrent) {
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
		n += roundUp(ext.end) - ext.start/cacheBlock*cacheBlock
	}
	return n
}

func roundUp(n int64) int64 { return (n + cacheBlock - 1) / cacheBlock * cacheBlock }

// pieceAt is the index of the piece holding torrent byte off.
func (ct *cachedTorrent) pieceAt(off int64) int { return int(off / ct.info.PieceLength) }

// punchLocked frees pieces [from, to) on disk. The range goes out to whole blocks on a side whose
// neighbouring piece holds no data, so that no block stays allocated for nothing.
func (c *cache) punchLocked(ct *cachedTorrent, from, to int) {
	start := int64(from) * ct.info.PieceLength
	end := min(int64(to)*ct.info.PieceLength, ct.info.TotalLength())
	for fi, ext := range ct.rangeFileExtents(start, end) {
		f := ct.files[fi]
		s, e := ext.start, ext.end
		if s%cacheBlock != 0 && !ct.pieces[ct.pieceAt(f.offset+s/cacheBlock*cacheBlock)].resident.Load() {
			s = s / cacheBlock * cacheBlock
		}
		if e%cacheBlock != 0 {
			// Past the end of the file the block holds nothing; before it, the next piece's bytes.
			if e >= f.length || !ct.pieces[ct.pieceAt(f.offset+min(roundUp(e), f.length)-1)].resident.Load() {
				e = roundUp(e)
			}
		}
		if err := punchFile(f.path, s, e-s); err != nil && !errors.Is(err, fs.ErrNotExist) {
			if !errors.Is(err, errPunchUnsupported) {
				c.logf("freeing evicted piece data", "file", f.path, "err", err)
			} else if !c.punchWarned {
				c.punchWarned = true
				c.logf("this file system cannot punch holes: evicted pieces keep their disk blocks, --cache-size cannot free them", "file", f.path, "err", err)
			}
		}
	}
}

// reserve makes room for piece i before its first write.
func (c *cache) reserve(ct *cachedTorrent, i int) error {
	c.mu.Lock()
	p := &ct.pieces[i]
	if p.resident.Load() {
		c.mu.Unlock()
		return nil
	}
	if c.torrents[ct.ih] != ct {
		c.mu.Unlock()
		return errors.New("torrent storage closed")
	}
	need := ct.charge(i)
	evicted, err := c.makeRoomLocked(need, ct, i)
	if err == nil {
		p.resident.Store(true)
		c.used += need
	}
	c.mu.Unlock()
	c.report(evicted)
	return err
}

// trim evicts until the cache fits its capacity (after a restart with a smaller --cache-size).
func (c *cache) trim() {
	c.mu.Lock()
	evicted, _ := c.makeRoomLocked(0, nil, -1)
	c.mu.Unlock()
	c.report(evicted)
}

func (c *cache) report(evicted map[metainfo.Hash][]int) {
	for ih, pieces := range evicted {
		c.evicted(ih, pieces)
	}
}

type victim struct {
	t    *cachedTorrent
	i    int
	last int64
}

// makeRoomLocked evicts least-recently-used pieces of unwatched torrents until need more bytes fit.
// Piece (self, selfIndex) is the one being written and is never a victim.
func (c *cache) makeRoomLocked(need int64, self *cachedTorrent, selfIndex int) (map[metainfo.Hash][]int, error) {
	if c.capacity <= 0 || c.used+need <= c.capacity {
		return nil, nil
	}
	var victims []victim
	for _, ct := range c.torrents {
		if c.watched(ct.ih) {
			continue
		}
		for i := range ct.pieces {
			p := &ct.pieces[i]
			if !p.resident.Load() || (ct == self && i == selfIndex) {
				continue
			}
			victims = append(victims, victim{ct, i, p.lastAccess.Load()})
		}
	}
	sort.Slice(victims, func(a, b int) bool { return victims[a].last < victims[b].last })
	// Free a little more than asked, so that a cache at its cap does not sort every piece for
	// every piece written.
	target := c.capacity - min(c.capacity/32, 64<<20)
	evicted := map[metainfo.Hash][]int{}
	for _, v := range victims {
		if c.used+need <= target {
			break
		}
		if err := c.evictLocked(v.t, v.i); err != nil {
			c.logf("evicting piece", "infohash", v.t.ih.HexString(), "piece", v.i, "err", err)
			continue
		}
		evicted[v.t.ih] = append(evicted[v.t.ih], v.i)
	}
	if c.used+need > c.capacity {
		return evicted, fmt.Errorf("%w (cap %d bytes)", errCacheFull, c.capacity)
	}
	return evicted, nil
}

// evictLocked frees piece i: not complete in the store first, then the bytes, so that no crash
// leaves a complete piece with a hole.
func (c *cache) evictLocked(ct *cachedTorrent, i int) error {
	p := &ct.pieces[i]
	p.mu.Lock() // wait for reads and writes of this piece to finish
	defer p.mu.Unlock()
	if err := c.completion.Set(metainfo.PieceKey{InfoHash: ct.ih, Index: i}, false); err != nil {
		return err
	}
	p.evicted.Store(true)
	charge := ct.charge(i)
	p.resident.Store(false)
	c.used -= charge
	c.punchLocked(ct, i, i+1)
	c.evictions.Add(1)
	c.evictedBytes.Add(charge)
	return nil
}

type cacheStats struct {
	used, capacity, evictions, evictedBytes int64
}

func (c *cache) stats() cacheStats {
	c.mu.Lock()
	used, capacity := c.used, c.capacity
	c.mu.Unlock()
	return cacheStats{used: used, capacity: capacity, evictions: c.evictions.Load(), evictedBytes: c.evictedBytes.Load()}
}

// cachePieceImpl is a piece of a cached torrent.
type cachePieceImpl struct {
	storage.PieceImpl
	c *cache
	t *cachedTorrent
	i int
}

func (p *cachePieceImpl) state() *cachedPiece { return &p.t.pieces[p.i] }

func (p *cachePieceImpl) touch() { p.state().lastAccess.Store(time.Now().UnixNano()) }

func (p *cachePieceImpl) ReadAt(b []byte, off int64) (int, error) {
	s := p.state()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.evicted.Load() {
		return 0, errEvicted
	}
	p.touch()
	return p.PieceImpl.ReadAt(b, off)
}

func (p *cachePieceImpl) WriteTo(w io.Writer) (int64, error) {
	s := p.state()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.evicted.Load() {
		return 0, errEvicted
	}
	p.touch()
	if wt, ok := p.PieceImpl.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, io.NewSectionReader(p.PieceImpl, 0, p.t.info.Piece(p.i).Length()))
}

func (p *cachePieceImpl) WriteAt(b []byte, off int64) (int, error) {
	p.touch()
	s := p.state()
	for {
		if err := p.c.reserve(p.t, p.i); err != nil {
			p.c.onWriteErr(p.t.ih, err)
			return 0, err
		}
		s.mu.RLock()
		// Evicted between the reservation and the lock: reserve again, or the bytes would be
		// on disk uncounted.
		if s.resident.Load() {
			break
		}
		s.mu.RUnlock()
	}
	n, err := p.PieceImpl.WriteAt(b, off)
	if n > 0 {
		s.evicted.Store(false)
	}
	s.mu.RUnlock()
	if err != nil {
		err = fmt.Errorf("writing piece %d: %w", p.i, err)
		p.c.onWriteErr(p.t.ih, err)
		return n, err
	}
	p.c.onWriteOK(p.t.ih)
	return n, nil
}

// MarkComplete refuses a piece evicted after it was hashed: its bytes are gone. (anacrolix then
// still caches the piece as complete; reads of it fail with errEvicted until it re-syncs the
// completion, which a failed read makes it do.)
func (p *cachePieceImpl) MarkComplete() error {
	s := p.state()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.evicted.Load() {
		return errEvicted
	}
	return p.PieceImpl.MarkComplete()
}

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
