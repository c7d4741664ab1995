//go:build linux

package gateway

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"golang.org/x/sys/unix"

	"github.com/swarmgate/swarmgate/internal/disktest"
	"github.com/swarmgate/swarmgate/internal/peertest"

	"github.com/swarmgate/swarmgate/registry"
)

// The cache tests fetch torrents of a little over 1 MiB (33 pieces of 32 KiB, the last one short)
// from native seeders on loopback, through /stream, under a cap of a few of them.
const (
	cacheTestSize     = 1<<20 + 12345
	cacheTestPieceLen = 32 << 10
)

func cacheSeeder(t *testing.T, name string) *peertest.Seeder {
	t.Helper()
	s, err := peertest.NewSeeder(t.TempDir(), name, cacheTestSize, cacheTestPieceLen, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// allocated is what the files under dir really take on disk: their allocated blocks.
// fetchAll adds the seeder's torrent and reads its file through /stream, checking every byte.
func fetchAll(t *testing.T, r *running, s *peertest.Seeder) *registry.Entry {
	t.Helper()
	e, ok := r.g.torrents.Get(s.Torrent.InfoHash())
	if !ok {
		res := addFromSeeder(t, r, s)
		if res.status != http.StatusCreated {
			t.Fatalf("POST %s: %d %s", s.Info.Name, res.status, res.body)
		}
		waitGotInfo(t, r.g, s.Torrent.InfoHash().HexString())
		e, _ = r.g.torrents.Get(s.Torrent.InfoHash())
	}
	res := r.get(t, "/stream/"+e.Torrent().InfoHash().HexString()+"/0", nil)
	if res.status != http.StatusOK || sha256.Sum256(res.body) != s.SHA256 {
		t.Fatalf("stream %s: status %d, %d bytes, digest matches: %v; error %q", s.Info.Name, res.status, len(res.body),
			sha256.Sum256(res.body) == s.SHA256, e.DiskError())
	}
	return e
}

// waitUnwatched waits for the viewer linger after a read to pass: the viewers left.
func waitUnwatched(t *testing.T, r *running, e *registry.Entry) {
	t.Helper()
	waitFor(t, 10*time.Second, "the viewer to leave "+e.Torrent().Name(), func() bool {
		return !e.Watched(time.Now())
	})
}

// onDisk hashes a cached torrent's single file as it is on disk.
func onDisk(t testing.TB, r *running, s *peertest.Seeder) [32]byte {
	t.Helper()
	p := filepath.Join(r.g.cfg.DataDir, torrentsDir, s.Torrent.InfoHash().HexString(), s.Info.Name)
	sum, err := peertest.FileSHA256(p)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func addSeederPeer(e *registry.Entry, s *peertest.Seeder) {
	e.Torrent().AddPeers([]torrent.PeerInfo{{Addr: torrent.StringAddr(s.Addr().String()), Source: "x.pe"}})
}

func checkUnderCap(t *testing.T, r *running, when string) {
	t.Helper()
	dir := filepath.Join(r.g.cfg.DataDir, torrentsDir)
	st := r.g.cache.Stats()
	// The file system's own blocks count too: a file whose data lies in more pieces (extents)
	// than its inode holds gets an extent tree block (ext4: past 4 extents), which pieces
	// written out of order cause. One such block per file is the file system's, not the cache's.
	slack := 4096 * int64(disktest.Files(t, dir))
	if got := disktest.Allocated(t, dir); got > st.Capacity+slack {
		t.Fatalf("%s: %s holds %d bytes on disk, cap %d (+%d for the file system's extent blocks)", when, dir, got, st.Capacity, slack)
	}
	if st.Used > st.Capacity {
		t.Fatalf("%s: cache counts %d bytes, cap %d", when, st.Used, st.Capacity)
	}
}

func cacheConfig(capacity int64) func(*Config) {
	return func(c *Config) {
		c.CacheSize = capacity
		c.IdleTimeout = 0
		c.ViewerLinger = 300 * time.Millisecond
	}
}

// Six torrents (6.1 MiB) fetched one after another under a 2.5 MiB cap: the data on disk never
// passes the cap, and the last one watched is whole, on disk and through /stream.
func TestCacheBoundedUnderStreamOfAdds(t *testing.T) {
	const capacity = 2<<20 + 512<<10
	r := startGateway(t, cacheConfig(capacity))
	var seeders []*peertest.Seeder
	var last *registry.Entry
	for i := range 6 {
		s := cacheSeeder(t, fmt.Sprintf("film-%d.mp4", i))
		seeders = append(seeders, s)
		if last != nil {
			waitUnwatched(t, r, last)
		}
		last = fetchAll(t, r, s)
		checkUnderCap(t, r, fmt.Sprintf("after film %d", i))
	}
	if got := last.Torrent().BytesCompleted(); got != cacheTestSize {
		t.Errorf("last film: %d of %d bytes complete", got, cacheTestSize)
	}
	if onDisk(t, r, seeders[5]) != seeders[5].SHA256 {
		t.Error("last film: the file on disk differs from the seeder's")
	}
	res := r.get(t, "/stream/"+last.Torrent().InfoHash().HexString()+"/0", nil)
	if sha256.Sum256(res.body) != seeders[5].SHA256 {
		t.Error("last film: streamed again, the bytes differ")
	}
	first, _ := r.g.torrents.Get(seeders[0].Torrent.InfoHash())
	if got := first.Torrent().BytesCompleted(); got == cacheTestSize {
		t.Error("first film still complete: nothing was evicted under the cap")
	}
	if st := r.g.cache.Stats(); st.Evictions == 0 || st.EvictedBytes < 3<<20 {
		t.Errorf("cache stats %+v: want evictions of at least 3 MiB", st)
	}
	metrics := string(r.get(t, "/metrics", nil).body)
	for _, m := range []string{"swarmgate_cache_bytes ", "swarmgate_cache_capacity_bytes 2.62144e+06", "swarmgate_cache_evictions_total "} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	checkUnderCap(t, r, "at the end")
}

// A torrent with a viewer keeps every piece while others come and go under the cap. Its pieces are
// the least recently used (only its first kilobyte is re-read), so plain LRU would take them first.
func TestCacheKeepsWatchedTorrent(t *testing.T) {
	const capacity = 2<<20 + 512<<10
	r := startGateway(t, func(c *Config) {
		cacheConfig(capacity)(c)
		c.ViewerLinger = time.Second // the viewer below asks every 50 ms: a loaded machine must not make it look gone
	})
	ws := cacheSeeder(t, "watched.mp4")
	w := fetchAll(t, r, ws)
	wPath := "/stream/" + w.Torrent().InfoHash().HexString() + "/0"

	stop := make(chan struct{})
	viewerDone := make(chan struct{})
	go func() { // a viewer paused at the start: it keeps asking for the first bytes
		defer close(viewerDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			req, _ := http.NewRequest(http.MethodGet, r.base+wPath, nil)
			req.Header.Set("Range", "bytes=0-999")
			if res, err := r.client.Do(req); err == nil {
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}
	}()
	defer func() { close(stop); <-viewerDone }()

	var prev *registry.Entry
	var others []*registry.Entry
	for i := range 4 {
		s := cacheSeeder(t, fmt.Sprintf("other-%d.mp4", i))
		if prev != nil {
			waitUnwatched(t, r, prev)
		}
		prev = fetchAll(t, r, s)
		others = append(others, prev)
		checkUnderCap(t, r, fmt.Sprintf("after other %d", i))
		if got := w.Torrent().BytesCompleted(); got != cacheTestSize {
			t.Fatalf("after other %d: the watched torrent has %d of %d bytes complete", i, got, cacheTestSize)
		}
	}
	if onDisk(t, r, ws) != ws.SHA256 {
		t.Error("the watched torrent's file on disk differs from the seeder's")
	}
	if others[0].Torrent().BytesCompleted() == cacheTestSize {
		t.Error("the first unwatched torrent is still complete: nothing was evicted")
	}
}

// An evicted piece is marked not complete (in anacrolix and in the persistent store), fetched again
// and verified when read, also after a restart.
func TestCacheEvictedPiecesRefetched(t *testing.T) {
	const capacity = 2<<20 + 512<<10
	dataDir := t.TempDir()
	withDir := func(c *Config) { cacheConfig(capacity)(c); c.DataDir = dataDir }
	r := startGateway(t, withDir)
	a, b, c := cacheSeeder(t, "a.mp4"), cacheSeeder(t, "b.mp4"), cacheSeeder(t, "c.mp4")
	ea := fetchAll(t, r, a)
	waitUnwatched(t, r, ea)
	eb := fetchAll(t, r, b)
	waitUnwatched(t, r, eb)
	ec := fetchAll(t, r, c)
	waitUnwatched(t, r, ec)

	ih := a.Torrent.InfoHash()
	missing := 0
	for i := range a.Info.NumPieces() {
		cmpl, err := r.g.completion.Get(metainfo.PieceKey{InfoHash: ih, Index: i})
		if err != nil {
			t.Fatal(err)
		}
		if !cmpl.Complete {
			missing++
			if ea.Torrent().Piece(i).State().Complete {
				t.Errorf("piece %d: not complete in the store, complete for anacrolix", i)
			}
		}
	}
	if missing == 0 {
		t.Fatal("no piece of a.mp4 was evicted")
	}
	// anacrolix dropped the seeder once both were complete; here no tracker or DHT names it again.
	// The count starts before the seeder is back: its first pieces may come before any read.
	before := ea.Torrent().Stats()
	addSeederPeer(ea, a)
	fetchAll(t, r, a)
	after := ea.Torrent().Stats()
	if got, want := after.PiecesDirtiedGood.Int64()-before.PiecesDirtiedGood.Int64(), int64(missing); got < want {
		t.Errorf("%d pieces verified on the second read, %d were evicted", got, want)
	}
	if ea.Torrent().BytesCompleted() != cacheTestSize || onDisk(t, r, a) != a.SHA256 {
		t.Error("a.mp4 is not whole on disk after the second read")
	}
	checkUnderCap(t, r, "after the second read")

	// After a restart, what is complete is complete and what was evicted is fetched again.
	r.stop()
	r2 := startGateway(t, withDir)
	checkUnderCap(t, r2, "after the restart")
	for _, s := range []*peertest.Seeder{a, b, c} {
		e, ok := r2.g.torrents.Get(s.Torrent.InfoHash())
		if !ok {
			t.Fatalf("%s not restored", s.Info.Name)
		}
		waitGotInfo(t, r2.g, s.Torrent.InfoHash().HexString())
		t.Logf("restored %s: %d of %d bytes complete, state %s", s.Info.Name, e.Torrent().BytesCompleted(), e.Torrent().Length(), e.State())
		addSeederPeer(e, s)
		fetchAll(t, r2, s)
		waitUnwatched(t, r2, e)
		checkUnderCap(t, r2, "after the restart, "+s.Info.Name)
	}
}

// --idle-timeout drops a downloaded torrent nobody watches, data, metainfo and saved state, but
// keeps files seeded in place and the demo.
func TestIdleTimeoutDropsUnwatched(t *testing.T) {
	dataDir := t.TempDir()
	cfg := func(c *Config) {
		c.DataDir = dataDir
		c.Demo = true
		c.IdleTimeout = 2 * time.Second
		c.ViewerLinger = 200 * time.Millisecond
	}
	r := startGateway(t, cfg)
	src := filepath.Join(t.TempDir(), "mine.mp4")
	content := randomBytes(300_000, 9)
	writeFile(t, src, content)
	seededIH, _ := seedLocal(t, r.g, src)

	s := cacheSeeder(t, "passing.mp4")
	e := fetchAll(t, r, s)
	ih := e.Torrent().InfoHash().HexString()
	dataPath := filepath.Join(dataDir, torrentsDir, ih)
	if _, err := os.Stat(dataPath); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the idle torrent to be dropped", func() bool { return r.g.torrents.DroppedIdle() == 1 })
	if got := r.get(t, "/api/torrents/"+ih, nil).status; got != http.StatusNotFound {
		t.Errorf("dropped torrent still in the API: %d", got)
	}
	if _, err := os.Stat(dataPath); !os.IsNotExist(err) {
		t.Errorf("dropped torrent's data %s still there (%v)", dataPath, err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "metainfo", ih+".torrent")); !os.IsNotExist(err) {
		t.Errorf("dropped torrent's metainfo still there (%v)", err)
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), ih) || !strings.Contains(string(b), seededIH) {
		t.Errorf("state.json after the drop: %s", b)
	}
	// The seeded file and the demo were idle as long: still served, file untouched.
	if got := r.get(t, "/api/torrents/"+seededIH, nil).status; got != http.StatusOK {
		t.Errorf("seeded-in-place torrent: %d after the idle timeout", got)
	}
	demoInfoHash(t, r)
	if got, err := os.ReadFile(src); err != nil || sha256.Sum256(got) != sha256.Sum256(content) {
		t.Errorf("seeded file changed or gone (%v)", err)
	}
	if !strings.Contains(string(r.get(t, "/metrics", nil).body), "swarmgate_torrents_dropped_idle_total 1") {
		t.Error("/metrics does not count the dropped torrent")
	}

	r.stop()
	r2 := startGateway(t, cfg)
	if got := r2.get(t, "/api/torrents/"+ih, nil).status; got != http.StatusNotFound {
		t.Errorf("dropped torrent back after a restart: %d", got)
	}
	res := r2.get(t, "/stream/"+seededIH+"/0", nil)
	if res.status != http.StatusOK || sha256.Sum256(res.body) != sha256.Sum256(content) {
		t.Errorf("seeded torrent after restart: %d, bytes right %v", res.status, sha256.Sum256(res.body) == sha256.Sum256(content))
	}
}

// A full disk (a 256 KiB tmpfs under the torrent's folder) makes writes fail: the API says so, no
// piece counts as complete that does not match its hash, nothing crashes, and once the disk has room
// again the torrent downloads and verifies. Where mounting is not allowed, the file is /dev/full
// instead, which fails every write in another way (it cannot be sized).
func TestDiskFullWriteErrors(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.writeRetry = 300 * time.Millisecond })
	s := cacheSeeder(t, "full.mp4")
	res := addFromSeeder(t, r, s)
	if res.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", res.status, res.body)
	}
	ih := s.Torrent.InfoHash().HexString()
	waitGotInfo(t, r.g, ih)
	dir := filepath.Join(r.g.cfg.DataDir, torrentsDir, ih)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, s.Info.Name)
	mountErr := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256k")
	if mountErr == nil {
		t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	} else {
		t.Logf("mounting a tmpfs: %v; using /dev/full", mountErr)
		if err := os.Symlink("/dev/full", file); err != nil {
			t.Fatal(err)
		}
	}

	// The read fails or is cut short; it must not hang or crash anything.
	go func() {
		if res, err := r.client.Get(r.base + "/stream/" + ih + "/0"); err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}()
	var v torrentView
	waitFor(t, 20*time.Second, "the write error in the API", func() bool {
		v = decodeView(t, r.get(t, "/api/torrents/"+ih, nil).body)
		return v.Error != ""
	})
	if mountErr == nil && !strings.Contains(v.Error, "no space left on device") {
		t.Errorf("API error %q does not say the disk is full", v.Error)
	}
	e, _ := r.g.torrents.Get(s.Torrent.InfoHash())
	if got := e.Torrent().BytesCompleted(); got == cacheTestSize {
		t.Fatalf("all %d bytes complete on a disk that cannot hold them", got)
	}
	checkCompletePieces(t, e, s, file)

	// Room again: downloads resume after the pause, every piece verified.
	if mountErr == nil {
		if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_REMOUNT, "size=8m"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a whole read once the disk has room", func() bool {
		res, err := r.client.Get(r.base + "/stream/" + ih + "/0")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		h := sha256.New()
		_, err = io.Copy(h, res.Body)
		return err == nil && res.StatusCode == http.StatusOK && [32]byte(h.Sum(nil)) == s.SHA256
	})
	if onDisk(t, r, s) != s.SHA256 {
		t.Error("file on disk differs after recovery")
	}
	v = decodeView(t, r.get(t, "/api/torrents/"+ih, nil).body)
	if v.Error != "" {
		t.Errorf("API still reports %q after writes succeeded", v.Error)
	}
	var list []torrentView
	if err := json.Unmarshal(r.get(t, "/api/torrents", nil).body, &list); err != nil || len(list) != 1 {
		t.Errorf("torrent list after recovery: %v %d", err, len(list))
	}
}

// checkCompletePieces checks that every piece anacrolix counts complete holds, on disk, the bytes
// of its hash.
func checkCompletePieces(t *testing.T, e *registry.Entry, s *peertest.Seeder, file string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		if os.IsNotExist(err) && e.Torrent().BytesCompleted() == 0 {
			return
		}
		t.Fatal(err)
	}
	defer f.Close()
	for i := range s.Info.NumPieces() {
		if !e.Torrent().Piece(i).State().Complete {
			continue
		}
		p := s.Info.Piece(i)
		b := make([]byte, p.Length())
		if _, err := f.ReadAt(b, p.Offset()); err != nil {
			t.Fatalf("piece %d counts as complete, reading it: %v", i, err)
		}
		if metainfo.HashBytes(b) != p.V1Hash().Unwrap() {
			t.Errorf("piece %d counts as complete but its bytes on disk do not match its hash", i)
		}
	}
}

// When the torrents being watched fill the cache alone, their writes fail with a clear error
// instead of growing the disk past the cap or evicting what viewers need.
func TestCacheFullOfWatched(t *testing.T) {
	const capacity = 512 << 10 // below the 1M minimum of the flag, to make one torrent overflow it
	r := startGateway(t, func(c *Config) {
		cacheConfig(1 << 20)(c)
		c.writeRetry = 200 * time.Millisecond
	})
	r.g.cache.SetCapacity(capacity)
	s := cacheSeeder(t, "too-big.mp4")
	res := addFromSeeder(t, r, s)
	if res.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", res.status, res.body)
	}
	ih := s.Torrent.InfoHash().HexString()
	waitGotInfo(t, r.g, ih)
	read := func() {
		if res, err := r.client.Get(r.base + "/stream/" + ih + "/0"); err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}
	go read()
	var v torrentView
	waitFor(t, 20*time.Second, "cache full in the API", func() bool {
		v = decodeView(t, r.get(t, "/api/torrents/"+ih, nil).body)
		return strings.Contains(v.Error, "cache full")
	})
	read() // again, after the pause: still full, still bounded
	e, _ := r.g.torrents.Get(s.Torrent.InfoHash())
	var complete int64
	for i := range s.Info.NumPieces() {
		if e.Torrent().Piece(i).State().Complete {
			complete += s.Info.Piece(i).Length()
		}
	}
	if complete == 0 || complete > capacity {
		t.Errorf("%d bytes of complete pieces under a cap of %d: want some, at most the cap", complete, capacity)
	}
	checkUnderCap(t, r, "full of a watched torrent")
	checkCompletePieces(t, e, s, filepath.Join(r.g.cfg.DataDir, torrentsDir, ih, s.Info.Name))
	if st := r.g.cache.Stats(); st.Evictions != 0 {
		t.Errorf("%d pieces of the watched torrent evicted", st.Evictions)
	}
}

// The time of the last viewer is saved when the viewer leaves and restored, so that idleness
// counts across restarts rather than from each start.
func TestIdleTimeoutCountsAcrossRestarts(t *testing.T) {
	dataDir := t.TempDir()
	cfg := func(c *Config) {
		c.DataDir = dataDir
		c.IdleTimeout = 0
		c.ViewerLinger = 200 * time.Millisecond
	}
	r := startGateway(t, cfg)
	s := cacheSeeder(t, "seen.mp4")
	before := time.Now()
	e := fetchAll(t, r, s)
	waitUnwatched(t, r, e)
	ih := e.Torrent().InfoHash().HexString()
	// state.json is written when the torrent is added and again when its last viewer leaves: what
	// counts is the file as the gateway left it.
	savedTime := func() time.Time {
		b, err := os.ReadFile(filepath.Join(dataDir, "state.json"))
		if err != nil {
			return time.Time{}
		}
		var st struct {
			Torrents []registry.Source `json:"torrents"`
		}
		if json.Unmarshal(b, &st) != nil {
			return time.Time{}
		}
		for _, src := range st.Torrents {
			if src.InfoHash == ih {
				return src.LastWatched
			}
		}
		return time.Time{}
	}
	// The registry saves at its first tick without the viewer; two more ticks and it has.
	waitMaintainTicks(t, e, 2)
	r.stop()
	saved := savedTime()
	if !saved.After(before) {
		t.Fatalf("state.json's last viewer time %v is not after the test began (%v)", saved, before)
	}

	r2 := startGateway(t, cfg)
	e2, ok := r2.g.torrents.Get(s.Torrent.InfoHash())
	if !ok {
		t.Fatal("torrent not restored")
	}
	if got := e2.LastWatched(); !got.Equal(saved) {
		t.Errorf("restored last viewer time %v, saved %v", got, saved)
	}
}
