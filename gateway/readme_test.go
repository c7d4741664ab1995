package gateway

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anacrolix/torrent"

	"github.com/swarmgate/swarmgate/internal/peertest"
)

// readmeCurlLines returns the curl commands of README.md's ```sh blocks, in order.
func readmeCurlLines(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	inSh := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```"):
			inSh = !inSh && strings.TrimPrefix(line, "```") == "sh"
		case inSh && strings.HasPrefix(line, "curl "):
			lines = append(lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestReadmeCurlExamples runs every curl line of the README, as written, against a real gateway:
// only the placeholders change (localhost:8080, the magnet, <infohash>, video.torrent), and $TOKEN
// is the gateway's admin token. Each must succeed (curl --fail-with-body: a 4xx fails it), and the
// file the stream example downloads must be the seeder's, byte for byte.
func TestReadmeCurlExamples(t *testing.T) {
	needTools(t, "curl", "curl")
	curl, _ := exec.LookPath("curl")
	lines := readmeCurlLines(t)
	if len(lines) < 2 {
		t.Fatalf("found %d curl lines in README.md's sh blocks; the README lost its examples or this parser broke", len(lines))
	}
	seeder, err := peertest.NewSeeder(t.TempDir(), "video.mp4", 1<<20, 64<<10, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer seeder.Close()
	const token = "readme-admin-token-0123456789"
	r := startGateway(t, func(c *Config) { c.AdminToken, c.AllowAdd = token, allowAddAny })
	work := t.TempDir()
	var mi bytes.Buffer
	if err := seeder.MetaInfo.Write(&mi); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "video.torrent"), mi.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ih := seeder.Torrent.InfoHash().HexString()
	hostPort := strings.TrimPrefix(r.base, "http://")
	placeholders := strings.NewReplacer(
		"localhost:8080", hostPort,
		"magnet:?xt=urn:btih:...", seeder.Magnet(),
		"<infohash>", ih,
	)
	for _, line := range lines {
		cmd := placeholders.Replace(line)
		if strings.Contains(cmd, "...") || strings.Contains(cmd, "<") {
			t.Fatalf("README line %q has a placeholder this test does not fill: %q", line, cmd)
		}
		// Quiet, and failing on HTTP errors; the README's own flags follow.
		cmd = curl + " -sS --fail-with-body --max-time 60 " + strings.TrimPrefix(cmd, "curl ")
		c := exec.Command("bash", "-c", cmd)
		c.Dir = work
		c.Env = append(os.Environ(), "TOKEN="+token)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Errorf("README: %s\nran: %s\n%v: %s", line, cmd, err, out)
			continue
		}
		if tor, ok := r.g.client.Torrent(seeder.Torrent.InfoHash()); ok {
			// As addFromSeeder: the magnet's x.pe is dialled, but now and then that dial stalls.
			tor.AddPeers([]torrent.PeerInfo{{Addr: torrent.StringAddr(seeder.Addr().String()), Source: "x.pe"}})
		}
		if strings.Contains(line, " -o video.mp4 ") {
			got, err := os.ReadFile(filepath.Join(work, "video.mp4"))
			if err != nil || sha256.Sum256(got) != seeder.SHA256 {
				t.Errorf("README: %s: downloaded %d bytes (%v), not the seeder's file", line, len(got), err)
			}
		}
	}
	if _, ok := r.g.torrents.Get(seeder.Torrent.InfoHash()); ok {
		t.Error("the README's DELETE left the torrent in place")
	}
}
