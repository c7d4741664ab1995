package e2e

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmgate/swarmgate/gateway"
)

// What a gateway had survives a restart: the torrent is listed again, and its verified data plays
// with no peer left to download it from.
func TestRestartKeepsTorrentsAndData(t *testing.T) {
	dataDir := t.TempDir()
	seeder := startSeeder(t, 3<<20, 64<<10)
	first := startGateway(t, inDir(dataDir))
	base := first.URL
	v := addMagnet(t, base, seeder.Magnet())
	if got := streamSHA256(t, base+"/stream/"+v.InfoHash+"/0"); got != seeder.SHA256 {
		t.Fatal("first run: streamed bytes differ from the seeder's")
	}
	waitState(t, base, v.InfoHash, "seeding")
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	seeder.Close() // nobody to download from any more

	base2 := startGateway(t, inDir(dataDir)).URL
	after := waitState(t, base2, v.InfoHash, "seeding")
	if after.Bytes.FromNative != 0 {
		t.Fatalf("second run downloaded %d bytes; it must use what it verified before", after.Bytes.FromNative)
	}
	if got := streamSHA256(t, base2+"/stream/"+v.InfoHash+"/0"); got != seeder.SHA256 {
		t.Fatal("second run: streamed bytes differ from the seeder's")
	}
}

// Seeded-in-place files come back after a restart too, and a torrent removed stays removed.
func TestRestartKeepsSeededFilesAndForgetsRemoved(t *testing.T) {
	dataDir := t.TempDir()
	src := filepath.Join(t.TempDir(), "clip.bin")
	content := bytes.Repeat([]byte("swarmgate "), 100_000)
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}
	seeder := startSeeder(t, 1<<20, 32<<10)

	first := startGateway(t, inDir(dataDir))
	base := first.URL
	parent, info, err := gatewayHashPath(src)
	if err != nil {
		t.Fatal(err)
	}
	tor, err := first.Gateway.AddLocal(parent, info)
	if err != nil {
		t.Fatal(err)
	}
	seededIH := tor.InfoHash().HexString()
	removed := addMagnet(t, base, seeder.Magnet())
	req, _ := http.NewRequest(http.MethodDelete, base+"/api/torrents/"+removed.InfoHash, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	base2 := startGateway(t, inDir(dataDir)).URL
	waitState(t, base2, seededIH, "seeding")
	if got, want := streamSHA256(t, base2+"/stream/"+seededIH+"/0"), sha256.Sum256(content); got != want {
		t.Fatal("seeded file streams wrong bytes after restart")
	}
	res, err = http.Get(base2 + "/api/torrents/" + removed.InfoHash)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("removed torrent came back after restart: %s", res.Status)
	}
}

func streamSHA256(t testing.TB, url string) [32]byte {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, res.Status)
	}
	h := sha256.New()
	if _, err := io.Copy(h, res.Body); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// waitState polls the API until the torrent reaches state.
func waitState(t testing.TB, base, ih, state string) torrentView {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v := getTorrent(t, base, ih)
		if v.State == state {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("torrent %s still %q after 30 s, want %q", ih, v.State, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// inDir keeps a gateway's data in dir, for a second gateway to start from.
func inDir(dir string) func(*gateway.Config) { return func(c *gateway.Config) { c.DataDir = dir } }

func gatewayHashPath(p string) (string, *metainfo.Info, error) { return gateway.HashPath(p, nil) }
