package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"go.uber.org/goleak"

	"github.com/swarmgate/swarmgate/gateway"
	"github.com/swarmgate/swarmgate/internal/peertest"
)

// The browser tests play real video: scripts/make-test-media.sh makes it with ffmpeg once per
// package run, into a temporary folder that TestMain removes.

var media struct {
	once sync.Once
	dir  string
	err  error
}

// TestMain removes the media folder (made on first use) after every test of the package has run,
// and fails the package if a goroutine outlives its tests: gateways, seeders, WebRTC peers,
// Chromium's DevTools connections and ffmpeg's pipes must all be gone by then.
//
// One upstream linger is ignored, by its functions: an anacrolix client's outgoing connection
// whose uTP dial is still pending when the client closes waits out its dial timeout (3 to 20 s),
// because Client.Close does not cancel dials and go-libutp's closed socket does not wake the
// dials waiting on it. A gateway dials peers over TCP and uTP at once; the native seeders here
// listen on TCP only, so a dial to a seeder that has gone (TestRestartKeepsTorrentsAndData
// closes its seeder, then restarts the gateway, which redials it) leaves the uTP half pending.
// It ends by itself.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/anacrolix/torrent.(*dialPool).getFirst"),
		goleak.IgnoreAnyFunction("github.com/anacrolix/go-libutp.(*Conn).waitForConnect"),
		goleak.IgnoreTopFunction("github.com/anacrolix/go-libutp.(*Conn).waitForConnect.func1"),
		goleak.Cleanup(func(code int) {
			if media.dir != "" {
				os.RemoveAll(media.dir)
			}
			os.Exit(code)
		}))
}

// testMedia returns the path of one of the files the media script makes ("test-h264.mp4",
// "test-vp9.webm"), making them on first use. Without ffmpeg the test is skipped (fails in CI).
func testMedia(t testing.TB, name string) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		missingTool(t, "ffmpeg", "apt-get install ffmpeg")
	}
	media.once.Do(func() {
		_, here, _, _ := runtime.Caller(0)
		script := filepath.Join(filepath.Dir(here), "..", "scripts", "make-test-media.sh")
		dir, err := os.MkdirTemp("", "swarmgate-test-media-")
		if err != nil {
			media.err = err
			return
		}
		media.dir = dir
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "bash", script, dir).CombinedOutput()
		if err != nil {
			media.err = fmt.Errorf("%s %s: %v\n%s", script, dir, err, out)
		}
	})
	if media.err != nil {
		t.Fatalf("making test media: %v", media.err)
	}
	path := filepath.Join(media.dir, name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("test media: %v", err)
	}
	return path
}

// fileSeeder is a native BitTorrent peer (anacrolix, TCP on 127.0.0.1 only: no DHT, uTP, WebRTC or
// PEX) seeding one existing file in place, like peertest.Seeder does for random bytes.
type fileSeeder struct {
	Client   *torrent.Client
	Torrent  *torrent.Torrent
	MetaInfo *metainfo.MetaInfo
	Info     *metainfo.Info
}

// seedFile hashes path and seeds it until the test ends. The magnet is its only way to be found.
func seedFile(t testing.TB, path string, pieceLength int64) *fileSeeder {
	t.Helper()
	info := &metainfo.Info{PieceLength: pieceLength}
	if err := info.BuildFromFilePath(path); err != nil {
		t.Fatal(err)
	}
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	mi := &metainfo.MetaInfo{InfoBytes: infoBytes}

	dir := filepath.Dir(path)
	cfg := peertest.LoopbackClientConfig(dir)
	cfg.DefaultStorage = storage.NewFileOpts(storage.NewFileClientOpts{
		ClientBaseDir:   dir,
		PieceCompletion: storage.NewMapPieceCompletion(),
	})
	cfg.Slogger = testLogger(t).With("component", "seeder")
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	tor, err := cl.AddTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}
	<-tor.GotInfo()
	if err := tor.VerifyDataContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tor.Complete().On():
	case <-time.After(30 * time.Second):
		t.Fatalf("seeder: %s did not verify: %d of %d bytes", path, tor.BytesCompleted(), tor.Length())
	}
	return &fileSeeder{Client: cl, Torrent: tor, MetaInfo: mi, Info: info}
}

// Magnet is the seeder's magnet with its TCP address as x.pe.
func (s *fileSeeder) Magnet() string {
	m := s.MetaInfo.Magnet(nil, s.Info)
	m.Params = map[string][]string{"x.pe": {s.Client.ListenAddrs()[0].String()}}
	return m.String()
}

// mediaTorrent is one video file seeded natively and added to a gateway by magnet.
type mediaTorrent struct {
	Path     string
	Seeder   *fileSeeder
	Base     string // the gateway's base URL
	InfoHash string
	Length   int64
}

// WatchURL is the gateway's watch page for file 0.
func (m *mediaTorrent) WatchURL() string { return m.Base + "/watch/" + m.InfoHash + "?file=0" }

// EmbedURL is the gateway's embed page for file 0.
func (m *mediaTorrent) EmbedURL() string { return m.Base + "/embed/" + m.InfoHash + "?file=0" }

// seedMediaThroughGateway seeds the named test video natively and adds its magnet to a new
// gateway (config changed by change), waiting until the gateway has the metadata. The gateway
// holds none of the data yet: it must fetch it from the native seeder as viewers ask.
func seedMediaThroughGateway(t testing.TB, name string, change func(*gateway.Config)) *mediaTorrent {
	t.Helper()
	path := testMedia(t, name)
	seeder := seedFile(t, path, 64<<10)
	base := startGateway(t, change).URL
	v := addMagnet(t, base, seeder.Magnet())
	fetchMetainfo(t, base, v.InfoHash)
	return &mediaTorrent{Path: path, Seeder: seeder, Base: base, InfoHash: v.InfoHash, Length: seeder.Info.TotalLength()}
}
