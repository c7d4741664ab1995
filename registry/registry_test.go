package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"go.uber.org/goleak"

	"github.com/swarmgate/swarmgate/internal/peertest"
	"github.com/swarmgate/swarmgate/piececache"
)

// TestMain fails the package if a goroutine outlives its tests: the registry starts maintenance,
// metadata watchers and prefetchers, and Close must end them all.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// node is a registry over a real anacrolix client on loopback, its data in dir.
type node struct {
	reg        *Registry
	client     *torrent.Client
	completion storage.PieceCompletion
	dir        string
	close      func()

	mu             sync.Mutex
	added, removed []metainfo.Hash
}

func startNode(t *testing.T, dir string, mutate func(*Config)) *node {
	t.Helper()
	completion, err := storage.NewDefaultPieceCompletionForDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ccfg := piececache.DefaultConfig()
	ccfg.Dir, ccfg.Completion, ccfg.CheckInfo = filepath.Join(dir, "torrents"), completion, CheckPieceCount
	cache, err := piececache.New(ccfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	tcfg := peertest.LoopbackClientConfig(dir)
	tcfg.DefaultStorage = cache.Storage()
	tcfg.Slogger = testLogger(t)
	client, err := torrent.NewClient(tcfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{client: client, completion: completion, dir: dir}
	cfg := DefaultConfig()
	cfg.Client, cfg.Completion, cfg.StateDir, cfg.DataDir = client, completion, dir, filepath.Join(dir, "torrents")
	cfg.Added = func(e *Entry) {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.added = append(n.added, e.Torrent().InfoHash())
	}
	cfg.Removed = func(e *Entry) {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.removed = append(n.removed, e.Torrent().InfoHash())
	}
	if mutate != nil {
		mutate(&cfg)
	}
	if n.reg, err = New(cfg, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	n.close = func() {
		once.Do(func() {
			n.reg.Close()
			client.Close()
			cache.Storage().Close()
		})
	}
	t.Cleanup(n.close)
	return n
}

// stop closes the node as a gateway shuts down: registry (twice: Close is idempotent), then
// client, then storage.
func (n *node) stop(t *testing.T) {
	if err := n.reg.Close(); err != nil {
		t.Error(err)
	}
	n.close()
}

func (n *node) hooks() (added, removed []metainfo.Hash) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.added), slices.Clone(n.removed)
}

// seedInPlace writes data to a new folder as name and adds it with AddLocal, as `swarmgate seed`
// does; it returns the torrent and the file's path.
func (n *node) seedInPlace(t *testing.T, name string, data []byte) (*torrent.Torrent, string) {
	t.Helper()
	local := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(local, data, 0o644); err != nil {
		t.Fatal(err)
	}
	info := &metainfo.Info{PieceLength: 16 << 10}
	if err := info.BuildFromFilePath(local); err != nil {
		t.Fatal(err)
	}
	tor, err := n.reg.AddLocal(Source{SeedDir: filepath.Dir(local)}, info)
	if err != nil {
		t.Fatal(err)
	}
	return tor, local
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newSeeder(t *testing.T, size int64) *peertest.Seeder {
	t.Helper()
	s, err := peertest.NewSeeder(t.TempDir(), "video.mp4", size, 64<<10, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestValidateNamesEveryField(t *testing.T) {
	err := Config{IdleTimeout: -1}.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate: %v, want ErrInvalidConfig", err)
	}
	for _, field := range []string{"Client", "Completion", "StateDir", "DataDir", "IdleTimeout", "ViewerLinger", "WriteRetry", "Tick"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("Validate does not name %s: %v", field, err)
		}
	}
	if _, err := New(Config{}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New with a zero Config: %v", err)
	}
}

// TestAddFetchRemove: a torrent added by metainfo downloads from a real seeder while someone
// reads it, byte for byte; the hooks hear of it once however often it is added; Remove with
// deleteData takes its data.
func TestAddFetchRemove(t *testing.T) {
	s := newSeeder(t, 1<<20)
	n := startNode(t, t.TempDir(), nil)
	spec, err := torrent.TorrentSpecFromMetaInfoErr(s.MetaInfo)
	if err != nil {
		t.Fatal(err)
	}
	spec.PeerAddrs = []string{s.Addr().String()}
	tor, isNew, err := n.reg.Add(spec, Source{})
	if err != nil || !isNew {
		t.Fatalf("Add: %v, new %v", err, isNew)
	}
	if _, again, err := n.reg.Add(spec, Source{}); err != nil || again {
		t.Errorf("Add again: %v, new %v", err, again)
	}
	ih := tor.InfoHash()
	e, ok := n.reg.Get(ih)
	if !ok || n.reg.Len() != 1 {
		t.Fatal("not in the registry")
	}
	if e.State() != StateIdle && e.State() != StateMetadata {
		t.Errorf("state %q before anyone reads", e.State())
	}
	// A reader (as /stream is): Touch makes it watched, and the prefetch fetches it all.
	e.Touch()
	n.reg.DemandChanged()
	waitFor(t, 30*time.Second, "the whole torrent", func() bool { return tor.Complete().Bool() })
	r := tor.NewReader()
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || sha256.Sum256(got) != s.SHA256 {
		t.Fatalf("read %d bytes (%v), not the seeder's", len(got), err)
	}
	if e.State() != StateSeeding {
		t.Errorf("state %q when complete", e.State())
	}
	if b, _ := e.Counts(); b.FromNative != 1<<20 {
		t.Errorf("from native %d bytes, want %d", b.FromNative, 1<<20)
	}
	dataDir := piececache.TorrentDir(filepath.Join(n.dir, "torrents"), ih)
	if _, err := os.Stat(dataDir); err != nil {
		t.Fatalf("no data folder: %v", err)
	}
	if err := n.reg.Remove(ih, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("data folder still there: %v", err)
	}
	added, removed := n.hooks()
	if !slices.Equal(added, []metainfo.Hash{ih}) || !slices.Equal(removed, []metainfo.Hash{ih}) {
		t.Errorf("hooks: added %v, removed %v; want %v once each", added, removed, ih)
	}
}

// TestRestoreReplaysState: after a restart the registry holds the same torrents, as they were
// added (their Added time, a folder seeded in place), with their metainfo from disk: no peer is
// there to give it.
func TestRestoreReplaysState(t *testing.T) {
	s := newSeeder(t, 256<<10)
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	spec, _ := torrent.TorrentSpecFromMetaInfoErr(s.MetaInfo)
	spec.PeerAddrs = []string{s.Addr().String()}
	tor, _, err := n.reg.Add(spec, Source{})
	if err != nil {
		t.Fatal(err)
	}
	metainfoFile := filepath.Join(dir, "metainfo", tor.InfoHash().HexString()+".torrent")
	waitFor(t, 10*time.Second, "the metainfo saved", func() bool { _, err := os.Stat(metainfoFile); return err == nil })

	lt, _ := n.seedInPlace(t, "clip.webm", bytes.Repeat([]byte("swarmgate"), 10000))
	if !lt.Complete().Bool() {
		t.Error("a folder seeded in place is not complete at once")
	}
	before := map[metainfo.Hash]Source{}
	for _, e := range n.reg.List() {
		before[e.Torrent().InfoHash()] = e.Source()
	}
	n.stop(t)
	s.Close() // no peer left to give the metadata

	n2 := startNode(t, dir, nil)
	if err := n2.reg.Restore(); err != nil {
		t.Fatal(err)
	}
	if n2.reg.Len() != 2 {
		t.Fatalf("%d torrents restored, want 2", n2.reg.Len())
	}
	for ih, src := range before {
		e, ok := n2.reg.Get(ih)
		if !ok {
			t.Fatalf("%s not restored", ih.HexString())
		}
		got := e.Source()
		if !got.Added.Equal(src.Added) || got.SeedDir != src.SeedDir || !e.Added().Equal(src.Added) {
			t.Errorf("%s restored as %+v, was %+v", ih.HexString(), got, src)
		}
		if !HasInfo(e.Torrent()) {
			t.Errorf("%s restored without its metadata", ih.HexString())
		}
	}
	if e, _ := n2.reg.Get(lt.InfoHash()); !e.Torrent().Complete().Bool() || e.OwnsData() {
		t.Errorf("the folder seeded in place: complete %v, owned %v; want complete, not owned", e.Torrent().Complete().Bool(), e.OwnsData())
	}
}

// TestRestoreRefusesCorruptState: a state.json that cannot be read stops the start, so that the
// next save does not overwrite it with nothing.
func TestRestoreRefusesCorruptState(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, dir, nil)
	if err := n.reg.Restore(); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("Restore: %v, want it to say the state is corrupt", err)
	}
}

// TestIdleTorrentDropped: a torrent nobody watched for IdleTimeout goes, with its data; one
// seeded in place stays.
func TestIdleTorrentDropped(t *testing.T) {
	s := newSeeder(t, 128<<10)
	n := startNode(t, t.TempDir(), func(c *Config) {
		c.IdleTimeout, c.Tick, c.ViewerLinger = 200*time.Millisecond, 20*time.Millisecond, 50*time.Millisecond
	})
	spec, _ := torrent.TorrentSpecFromMetaInfoErr(s.MetaInfo)
	tor, _, err := n.reg.Add(spec, Source{})
	if err != nil {
		t.Fatal(err)
	}
	lt, local := n.seedInPlace(t, "a.mp4", []byte("seeded in place"))
	waitFor(t, 20*time.Second, "the idle torrent dropped", func() bool { return n.reg.DroppedIdle() == 1 })
	if _, ok := n.reg.Get(tor.InfoHash()); ok {
		t.Error("dropped torrent still held")
	}
	if _, ok := n.reg.Get(lt.InfoHash()); !ok {
		t.Error("the folder seeded in place was dropped")
	}
	if _, err := os.Stat(local); err != nil {
		t.Errorf("the seeded file: %v", err)
	}
}

func TestCheckInfoRefusesEscapingPaths(t *testing.T) {
	for _, name := range []string{"..", ".", "a/b", `a\b`, ""} {
		info := &metainfo.Info{Name: name, PieceLength: 16 << 10, Length: 1, Pieces: make([]byte, 20)}
		if err := CheckInfo(info); !errors.Is(err, ErrBadTorrent) {
			t.Errorf("name %q: %v, want ErrBadTorrent", name, err)
		}
	}
	ok := &metainfo.Info{Name: "Icon\r", PieceLength: 16 << 10, Length: 1, Pieces: make([]byte, 20)}
	if err := CheckInfo(ok); err != nil {
		t.Errorf("a control character in a name is data, not a path: %v", err)
	}
	torn := &metainfo.Info{Name: "torn", PieceLength: 16 << 10, Length: 1, Pieces: make([]byte, 21)}
	if err := CheckInfo(torn); !errors.Is(err, ErrBadTorrent) {
		t.Errorf("21 bytes of piece hashes: %v", err)
	}
}

// TestPrefetchGate: the prefetch's reader ends when an HTTP reader opens, and the prefetch waits
// until the last one closes.
func TestPrefetchGate(t *testing.T) {
	var g prefetchGate
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rctx, done, err := g.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	g.readerOpened()
	g.readerOpened()
	if rctx.Err() == nil {
		t.Fatal("the prefetch's reader kept going with a reader open")
	}
	acquired := make(chan struct{})
	go func() {
		defer close(acquired)
		_, done, err := g.acquire(ctx)
		if err == nil {
			done()
		}
	}()
	g.readerClosed()
	select {
	case <-acquired:
		t.Fatal("the prefetch resumed with a reader still open")
	case <-time.After(50 * time.Millisecond):
	}
	g.readerClosed()
	<-acquired
}

// TestFetchAllWithoutViewers: a torrent added to be fetched whole (a file a browser shares in)
// downloads with nobody watching, and says so in state.json; one added plainly waits for a viewer
// until it is added again with FetchAll.
func TestFetchAllWithoutViewers(t *testing.T) {
	shared, plain := newSeeder(t, 512<<10), newSeeder(t, 256<<10)
	dir := t.TempDir()
	n := startNode(t, dir, func(c *Config) { c.Tick = 50 * time.Millisecond })
	add := func(s *peertest.Seeder, fetchAll bool) *torrent.Torrent {
		spec, _ := torrent.TorrentSpecFromMetaInfoErr(s.MetaInfo)
		spec.PeerAddrs = []string{s.Addr().String()}
		tor, _, err := n.reg.Add(spec, Source{FetchAll: fetchAll})
		if err != nil {
			t.Fatal(err)
		}
		return tor
	}
	a, b := add(shared, true), add(plain, false)
	waitFor(t, 30*time.Second, "the shared file fetched whole", func() bool { return a.Complete().Bool() })
	if got := b.BytesCompleted(); got != 0 {
		t.Errorf("the plain torrent fetched %d bytes with nobody watching", got)
	}
	state, _ := os.ReadFile(filepath.Join(dir, "state.json"))
	if !strings.Contains(string(state), `"fetch_all": true`) {
		t.Errorf("state.json does not keep fetch_all: %s", state)
	}
	add(plain, true)
	waitFor(t, 30*time.Second, "the plain torrent fetched once asked to", func() bool { return b.Complete().Bool() })
}

// TestViewerBeforeMetadata: a torrent watched before its metadata came starts fetching when the
// metadata comes, not at the next tick (an hour away here).
func TestViewerBeforeMetadata(t *testing.T) {
	s := newSeeder(t, 512<<10)
	n := startNode(t, t.TempDir(), func(c *Config) { c.Tick = time.Hour })
	spec := &torrent.TorrentSpec{}
	spec.InfoHash = s.MetaInfo.HashInfoBytes()
	tor, _, err := n.reg.Add(spec, Source{})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := n.reg.Get(tor.InfoHash())
	// A viewer, looked at while no peer can give the metadata: LastWatched moves once it was.
	before := e.LastWatched()
	e.Touch()
	n.reg.DemandChanged()
	waitFor(t, 10*time.Second, "the viewer looked at", func() bool { return e.LastWatched().After(before) })
	if tor.Info() != nil {
		t.Fatal("metadata before any peer")
	}
	spec.PeerAddrs = []string{s.Addr().String()}
	if _, _, err := n.reg.Add(spec, Source{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the torrent fetched once its metadata came", func() bool { return tor.Complete().Bool() })
}
