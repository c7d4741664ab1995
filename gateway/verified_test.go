package gateway

import (
	"bytes"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/internal/peertest"
)

// TestZeroLengthFilesStream seeds a folder in which empty files (a placeholder, an empty .nfo) sit
// between and after real ones, pieces spanning them, and streams every file from the gateway while
// it downloads: each must come out byte-identical, the empty ones as empty 200s.
func TestZeroLengthFilesStream(t *testing.T) {
	root := filepath.Join(t.TempDir(), "Show")
	files := []struct {
		name string
		data []byte
	}{
		{"1 a.mp4", randomBytes(300_001, 1)},
		{"2 empty.nfo", nil},
		{"3 b.mp4", randomBytes(700_003, 2)},
		{"4 placeholder.txt", nil},
		{"5 c.mp4", randomBytes(90_000, 3)},
		{"6 empty.txt", nil},
	}
	// BuildFromFilePath orders files by name: the numbers keep the empty ones between the others.
	for _, f := range files {
		writeFile(t, filepath.Join(root, f.name), f.data)
	}
	seeder, err := peertest.SeedPath(root, 64<<10, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(seeder.Close)

	r := startGateway(t, nil)
	dumpOnFailure(t, r, seeder)
	res := r.postJSON(t, map[string]string{"magnet": seeder.Magnet()})
	if res.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", res.status, res.body)
	}
	ih := seeder.Torrent.InfoHash().HexString()
	waitGotInfo(t, r.g, ih)
	tor, _ := r.g.client.Torrent(seeder.Torrent.InfoHash())
	for i, f := range tor.Files() {
		want := files[i]
		if filepath.Base(f.DisplayPath()) != want.name {
			t.Fatalf("file %d is %q, want %q", i, f.DisplayPath(), want.name)
		}
		res := r.get(t, "/stream/"+ih+"/"+strconv.Itoa(i), nil)
		if res.status != http.StatusOK {
			t.Errorf("%s: status %d %.200s", want.name, res.status, res.body)
			continue
		}
		if got := res.header.Get("Content-Length"); got != strconv.Itoa(len(want.data)) {
			t.Errorf("%s: Content-Length %q, want %d", want.name, got, len(want.data))
		}
		if !bytes.Equal(res.body, want.data) {
			t.Errorf("%s: %d bytes differ from the seeded %d", want.name, len(res.body), len(want.data))
		}
	}
	waitFor(t, 60*time.Second, "the whole torrent to complete", func() bool { return tor.Complete().Bool() })
	// And from the gateway's disk, once complete.
	for i, want := range files {
		res := r.get(t, fmt.Sprintf("/stream/%s/%d", ih, i), nil)
		if res.status != http.StatusOK || !bytes.Equal(res.body, want.data) {
			t.Errorf("%s after completion: status %d, bytes right %v", want.name, res.status, bytes.Equal(res.body, want.data))
		}
	}
}
