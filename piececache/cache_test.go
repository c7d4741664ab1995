//go:build linux

package piececache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"github.com/swarmgate/swarmgate/internal/disktest"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func newTestCache(t *testing.T, cfg Config) *Cache {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Completion == nil {
		cfg.Completion = storage.NewMapPieceCompletion()
	}
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// openTorrent opens a one-file torrent of n pieces of pieceLen in c's storage. Its piece hashes
// are zeros: the storage never checks them, anacrolix does.
func openTorrent(t *testing.T, c *Cache, seed byte, n int, pieceLen int64) (storage.TorrentImpl, *metainfo.Info, metainfo.Hash) {
	t.Helper()
	info := &metainfo.Info{Name: fmt.Sprintf("t%d.bin", seed), PieceLength: pieceLen, Length: int64(n) * pieceLen, Pieces: make([]byte, 20*n)}
	var ih metainfo.Hash
	ih[0] = seed
	impl, err := c.Storage().OpenTorrent(context.Background(), info, ih)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { impl.Close() })
	return impl, info, ih
}

func writePiece(t *testing.T, impl storage.TorrentImpl, info *metainfo.Info, i int) error {
	t.Helper()
	p := info.Piece(i)
	_, err := impl.Piece(p).WriteAt(randomBytes(int(p.Length()), uint64(i)), 0)
	return err
}

func readPiece(impl storage.TorrentImpl, info *metainfo.Info, i int) ([]byte, error) {
	p := info.Piece(i)
	b := make([]byte, p.Length())
	_, err := impl.Piece(p).ReadAt(b, 0)
	return b, err
}

// evictNow evicts piece i as a write needing room would: chosen under the lock, freed outside it.
func evictNow(t *testing.T, c *Cache, ih metainfo.Hash, i int) {
	t.Helper()
	c.mu.Lock()
	ct := c.torrents[ih]
	p := &ct.pieces[i]
	if !p.resident.Load() {
		c.mu.Unlock()
		t.Fatalf("piece %d is not resident", i)
	}
	p.resident.Store(false)
	c.used -= ct.charge(i)
	c.mu.Unlock()
	if ok, err := c.evictPiece(ct, i); !ok || err != nil {
		t.Fatalf("evicting piece %d: %v %v", i, ok, err)
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{Capacity: -1}.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("got %v, want ErrInvalidConfig", err)
	}
	for _, field := range []string{"Dir", "Capacity", "Completion"} {
		if !bytes.Contains([]byte(err.Error()), []byte(field)) {
			t.Errorf("%q does not name %s", err, field)
		}
	}
	if _, err := New(Config{}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New with an empty config: %v", err)
	}
}

// A piece that needs room evicts the least recently used pieces of unwatched torrents, never a
// watched torrent's, and a write fails with ErrFull when only watched pieces are left.
func TestEvictsLeastRecentlyUsedUnwatched(t *testing.T) {
	const pieceLen = 32 << 10
	var mu sync.Mutex
	watched := map[metainfo.Hash]bool{}
	var evicted []string
	c := newTestCache(t, Config{
		Capacity: 6 * pieceLen,
		Watched: func(ih metainfo.Hash) bool {
			mu.Lock()
			defer mu.Unlock()
			return watched[ih]
		},
		OnEvicted: func(ih metainfo.Hash, pieces []int) {
			mu.Lock()
			defer mu.Unlock()
			for _, i := range pieces {
				evicted = append(evicted, fmt.Sprintf("%d/%d", ih[0], i))
			}
		},
	})
	a, aInfo, _ := openTorrent(t, c, 1, 8, pieceLen)
	b, bInfo, bIH := openTorrent(t, c, 2, 8, pieceLen)
	for _, w := range []struct {
		impl storage.TorrentImpl
		info *metainfo.Info
		i    int
	}{{a, aInfo, 0}, {a, aInfo, 1}, {b, bInfo, 0}, {a, aInfo, 2}, {b, bInfo, 1}, {a, aInfo, 3}} {
		if err := writePiece(t, w.impl, w.info, w.i); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // distinct access times: the order below is the LRU order
	}
	if _, err := readPiece(a, aInfo, 0); err != nil { // a/0 is now the most recently used
		t.Fatal(err)
	}
	// Full (6 pieces). The 7th frees down to just under the cap: a/1 and b/0, the oldest two.
	if err := writePiece(t, b, bInfo, 2); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := fmt.Sprint(evicted)
	mu.Unlock()
	if got != "[1/1 2/0]" && got != "[2/0 1/1]" {
		t.Fatalf("evicted %s, want a/1 and b/0 (1/1 2/0)", got)
	}
	if _, err := readPiece(a, aInfo, 1); !errors.Is(err, ErrEvicted) {
		t.Errorf("reading evicted a/1: %v, want ErrEvicted", err)
	}
	if _, err := readPiece(a, aInfo, 0); err != nil {
		t.Errorf("a/0, read recently, was evicted: %v", err)
	}

	// Only b is left unwatched once a is watched; b's pieces go first, then writes fail.
	mu.Lock()
	watched[metainfo.Hash{1}] = true
	watched[bIH] = false
	mu.Unlock()
	for i := 3; i < 8; i++ {
		err := writePiece(t, a, aInfo, i)
		if st := c.Stats(); st.Used > st.Capacity {
			t.Fatalf("counted %d bytes over a cap of %d", st.Used, st.Capacity)
		}
		if err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatalf("writing a/%d: %v, want ErrFull", i, err)
			}
			if _, rerr := readPiece(a, aInfo, 0); rerr != nil {
				t.Fatalf("a watched torrent's piece was evicted: %v", rerr)
			}
			return
		}
	}
	t.Fatal("writes of a watched torrent past the cap never failed")
}

// blockingCompletion holds every Set(false), an eviction's first disk step, until released.
type blockingCompletion struct {
	storage.PieceCompletion
	armed   chan struct{} // closed: Set(false) blocks
	entered chan struct{}
	release chan struct{}
}

func (b *blockingCompletion) Set(k metainfo.PieceKey, complete bool) error {
	select {
	case <-b.armed:
		if !complete {
			select {
			case b.entered <- struct{}{}:
			default:
			}
			<-b.release
		}
	default:
	}
	return b.PieceCompletion.Set(k, complete)
}

// An eviction's disk work (the completion store's write and fsync, the punched hole) runs outside
// the cache's lock: while it is stuck, another piece's first write, which fits, and Stats go on.
func TestWriteDoesNotWaitForAnotherEviction(t *testing.T) {
	const pieceLen = 32 << 10
	bc := &blockingCompletion{
		PieceCompletion: storage.NewMapPieceCompletion(),
		armed:           make(chan struct{}),
		entered:         make(chan struct{}, 1),
		release:         make(chan struct{}),
	}
	c := newTestCache(t, Config{Capacity: 4 * pieceLen, Completion: bc})
	impl, info, _ := openTorrent(t, c, 1, 8, pieceLen)
	for i := range 4 {
		if err := writePiece(t, impl, info, i); err != nil {
			t.Fatal(err)
		}
	}
	close(bc.armed)
	var released sync.Once
	release := func() { released.Do(func() { close(bc.release) }) }
	t.Cleanup(release)

	evicting := make(chan error, 1)
	go func() { evicting <- writePiece(t, impl, info, 4) }() // evicts pieces 0 and 1
	<-bc.entered

	other := make(chan error, 1)
	go func() {
		c.Stats()
		other <- writePiece(t, impl, info, 5) // fits in the room piece 4's eviction accounted
	}()
	select {
	case err := <-other:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a write that fits waited behind another write's eviction")
	}
	release()
	if err := <-evicting; err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{false, false, true, true, true, true} {
		_, err := readPiece(impl, info, i)
		if got := err == nil; got != want {
			t.Errorf("piece %d readable: %v, want %v (%v)", i, got, want, err)
		}
	}
	if st := c.Stats(); st.Used > st.Capacity || st.Evictions != 2 {
		t.Errorf("stats %+v: want used within capacity, 2 evictions", st)
	}
}

// A piece chosen as a victim and written again before its eviction's disk work keeps its bytes:
// the eviction sees it reserved again and leaves it.
func TestVictimWrittenAgainIsKept(t *testing.T) {
	const pieceLen = 32 << 10
	c := newTestCache(t, Config{Capacity: 4 * pieceLen})
	impl, info, ih := openTorrent(t, c, 1, 4, pieceLen)
	if err := writePiece(t, impl, info, 0); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	ct := c.torrents[ih]
	victims, err := c.chooseVictimsLocked(4*pieceLen, nil, -1) // as if a piece needed the whole cache
	c.mu.Unlock()
	if err != nil || len(victims) != 1 {
		t.Fatalf("chose %v (%v), want piece 0", victims, err)
	}
	if err := writePiece(t, impl, info, 0); err != nil { // reserves it again
		t.Fatal(err)
	}
	if ok, err := c.evictPiece(ct, 0); ok || err != nil {
		t.Fatalf("evicted a piece reserved again: %v %v", ok, err)
	}
	got, err := readPiece(impl, info, 0)
	if err != nil || !bytes.Equal(got, randomBytes(pieceLen, 0)) {
		t.Fatalf("piece 0 lost its bytes: %v", err)
	}
	if st := c.Stats(); st.Used != pieceLen {
		t.Errorf("counts %d bytes, want %d", st.Used, pieceLen)
	}
}

// Pieces that straddle files at offsets that are not block-aligned: evicting some keeps every byte
// of the others, the disk never holds more than the cache counts, and evicting all frees every
// block. Real files, the real file storage and anacrolix's in-memory completion store.
func TestPunchMultiFile(t *testing.T) {
	base := t.TempDir()
	const pieceLen = 32 << 10
	lengths := []int64{50_000, 70_001, 33_333, 4096, 200_000}
	info := &metainfo.Info{Name: "show", PieceLength: pieceLen}
	var all []byte
	for i, n := range lengths {
		info.Files = append(info.Files, metainfo.FileInfo{Path: []string{fmt.Sprintf("part-%d.bin", i)}, Length: n})
		all = append(all, randomBytes(int(n), uint64(i+20))...)
	}
	var ih metainfo.Hash
	ih[0] = 0x42
	dir := filepath.Join(base, ih.HexString(), "show")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	off := int64(0)
	for i, n := range lengths {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%d.bin", i)), all[off:off+n], 0o644); err != nil {
			t.Fatal(err)
		}
		off += n
	}
	completion := storage.NewMapPieceCompletion()
	numPieces := int((off + pieceLen - 1) / pieceLen)
	for i := range numPieces {
		if err := completion.Set(metainfo.PieceKey{InfoHash: ih, Index: i}, true); err != nil {
			t.Fatal(err)
		}
	}
	info.Pieces = make([]byte, 20*numPieces)
	c, err := New(Config{Dir: base, Completion: completion}, nil)
	if err != nil {
		t.Fatal(err)
	}
	impl, err := c.Storage().OpenTorrent(context.Background(), info, ih)
	if err != nil {
		t.Fatal(err)
	}
	if got := disktest.Allocated(t, base); got > c.Stats().Used {
		t.Fatalf("all resident: %d bytes on disk, cache counts %d", got, c.Stats().Used)
	}
	for i := 1; i < numPieces; i += 2 {
		evictNow(t, c, ih, i)
	}
	if got := disktest.Allocated(t, base); got > c.Stats().Used {
		t.Errorf("odd pieces evicted: %d bytes on disk, cache counts %d", got, c.Stats().Used)
	}
	for i := range numPieces {
		p := info.Piece(i)
		b, err := readPiece(impl, info, i)
		if i%2 == 1 {
			if !errors.Is(err, ErrEvicted) {
				t.Errorf("piece %d evicted: read gives %v, want ErrEvicted", i, err)
			}
			continue
		}
		if err != nil || !bytes.Equal(b, all[p.Offset():p.Offset()+p.Length()]) {
			t.Errorf("piece %d kept: bytes changed (%v)", i, err)
		}
		if cmpl, _ := completion.Get(metainfo.PieceKey{InfoHash: ih, Index: i}); !cmpl.Complete {
			t.Errorf("piece %d kept but not complete", i)
		}
	}
	for i := 0; i < numPieces; i += 2 {
		evictNow(t, c, ih, i)
	}
	if got, used := disktest.Allocated(t, base), c.Stats().Used; got != 0 || used != 0 {
		t.Errorf("all evicted: %d bytes on disk, cache counts %d; want 0 and 0", got, used)
	}
	for i := range numPieces {
		if cmpl, _ := completion.Get(metainfo.PieceKey{InfoHash: ih, Index: i}); cmpl.Complete {
			t.Errorf("piece %d evicted but complete in the store", i)
		}
	}
}

// A torrent whose info CheckInfo refuses never opens, and the cache keeps nothing of it.
func TestCheckInfoRefuses(t *testing.T) {
	refuse := errors.New("refused")
	c := newTestCache(t, Config{CheckInfo: func(*metainfo.Info) error { return refuse }})
	info := &metainfo.Info{Name: "x", PieceLength: 16 << 10, Length: 1, Pieces: make([]byte, 20)}
	if _, err := c.Storage().OpenTorrent(context.Background(), info, metainfo.Hash{1}); !errors.Is(err, refuse) {
		t.Fatalf("got %v, want the check's error", err)
	}
	if len(c.torrents) != 0 {
		t.Fatalf("the cache keeps %d torrents", len(c.torrents))
	}
}
