package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
)

// Transmission as the only seeder: Debian's transmission-cli 3.00 advertises reqq 512 but rejects
// the 512th outstanding request, ~10 s late. anacrolix used to fill the whole reqq and, after that
// reject, never request from the conn again, so the download stopped for good at 16,744,448 bytes
// (1022 chunks: 1+2+…+256 requests, then 512 of which one was rejected). See the swarmgate patch
// in third_party/anacrolix-torrent (peerconn.go, requesting.go) and third_party/README.md.

// inCITest reports whether the tests run in CI (CI=true), where a missing tool is a failure.
func inCITest() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "false" && v != "0"
}

// transmissionSeeder is a transmission-cli process seeding one torrent on loopback.
type transmissionSeeder struct {
	addr string // 127.0.0.1:port

	mu  sync.Mutex
	out bytes.Buffer // its stdout and stderr
}

func (s *transmissionSeeder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Write(p)
}

func (s *transmissionSeeder) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Its status line is redrawn with \r every 200 ms.
	return strings.ReplaceAll(s.out.String(), "\r", "\n")
}

func (s *transmissionSeeder) seeding() bool {
	return strings.Contains(s.output(), "Seeding, uploading")
}

// startTransmission seeds torrentFile (whose data is in dataDir) with transmission-cli, with
// everything that could reach beyond loopback turned off: no DHT, LPD, PEX, port mapping, RPC,
// uTP, blocklist updates, and listening on 127.0.0.1/::1 only; the torrent has no tracker. It
// returns once transmission has verified the data and seeds. Outside CI the test is skipped when
// transmission-cli is not installed.
func startTransmission(t *testing.T, torrentFile, dataDir string) *transmissionSeeder {
	t.Helper()
	bin, err := exec.LookPath("transmission-cli")
	if err != nil {
		if inCITest() {
			t.Fatalf("transmission-cli not found, and CI is set: CI must install it (apt-get install transmission-cli)")
		}
		t.Skip("transmission-cli not found: skipping (install it: apt-get install transmission-cli; with CI=true this is a failure)")
	}
	stdbuf, err := exec.LookPath("stdbuf")
	if err != nil {
		t.Skipf("stdbuf (coreutils) not found: %v", err)
	}
	port := freeLoopbackPort(t)
	home := t.TempDir()
	cfgDir := filepath.Join(home, "config")
	settings := map[string]any{
		"dht-enabled":                false,
		"lpd-enabled":                false,
		"pex-enabled":                false,
		"utp-enabled":                false,
		"port-forwarding-enabled":    false,
		"rpc-enabled":                false,
		"blocklist-enabled":          false,
		"bind-address-ipv4":          "127.0.0.1",
		"bind-address-ipv6":          "::1",
		"peer-port":                  port,
		"peer-port-random-on-start":  false,
		"speed-limit-up-enabled":     false,
		"speed-limit-down-enabled":   false,
		"alt-speed-enabled":          false,
		"ratio-limit-enabled":        false,
		"idle-seeding-limit-enabled": false,
		"start-added-torrents":       true,
		"message-level":              2,
	}
	b, err := json.MarshalIndent(settings, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(cfgDir, "settings.json"), b)

	s := &transmissionSeeder{addr: net.JoinHostPort("127.0.0.1", fmt.Sprint(port))}
	// stdbuf -o0: the status line ("Seeding, …") goes to stdout, which would otherwise sit in a
	// full buffer.
	cmd := exec.Command(stdbuf, "-o0", bin, "-g", cfgDir, "-p", fmt.Sprint(port), "-M", "-w", dataDir, torrentFile)
	cmd.Env = append(os.Environ(), "HOME="+home, "TRANSMISSION_HOME="+cfgDir)
	cmd.Stdout, cmd.Stderr = s, s
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// SIGTERM lets it stop the torrent and save its state; kill it if that takes too long.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			out := s.output()
			if len(out) > 4000 {
				out = "…" + out[len(out)-4000:]
			}
			t.Logf("transmission-cli output:\n%s", out)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for !s.seeding() {
		select {
		case <-exited:
			t.Fatalf("transmission-cli exited before seeding:\n%s", s.output())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("transmission-cli not seeding after 60s:\n%s", s.output())
		}
	}
	return s
}

// freeLoopbackPort asks the kernel for a free TCP port on 127.0.0.1.
func freeLoopbackPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestStreamFromTransmission: with transmission-cli as the only seeder of a 24 MiB file, /stream
// delivers the whole file, byte-identical. Without the swarmgate patch in anacrolix the read
// stalls at 16,744,448 bytes. (Transmission unchokes a new peer at its next 10 s rechoke, so the
// first bytes take a while.)
func TestStreamFromTransmission(t *testing.T) {
	const size = 24<<20 + 12345
	dataDir := t.TempDir()
	want := make([]byte, size)
	rand.NewChaCha8([32]byte{0x7e, 0x4}).Read(want) // randomBytes is slow at this size under -race
	file := filepath.Join(dataDir, "big.bin")
	writeFile(t, file, want)
	_, info, err := HashPath(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	torrentFile := filepath.Join(t.TempDir(), "big.torrent")
	metainfoBytes := torrentBytes(t, info) // no announce: there is no tracker to reach
	writeFile(t, torrentFile, metainfoBytes)
	seeder := startTransmission(t, torrentFile, dataDir)

	r := startGateway(t, nil)
	res := r.do(t, http.MethodPost, "/api/torrents", map[string]string{"Content-Type": "application/x-bittorrent"}, bytes.NewReader(metainfoBytes))
	if res.status != http.StatusCreated {
		t.Fatalf("POST .torrent: %d %s", res.status, res.body)
	}
	ih := decodeView(t, res.body).InfoHash
	tor, ok := r.g.client.Torrent(mustHash(t, ih))
	if !ok {
		t.Fatal("torrent not in the client after POST")
	}
	tor.AddPeers([]torrent.PeerInfo{{Addr: torrent.StringAddr(seeder.addr), Source: "x.pe"}})
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var b strings.Builder
		r.g.client.WriteStatus(&b)
		t.Logf("gateway client status:\n%s", b.String())
	})

	got, err := streamWatchingProgress(r, "/stream/"+ih+"/0", tor, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != size || sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("/stream gave %d bytes, want %d; identical: %v", len(got), size, bytes.Equal(got, want))
	}
}

// streamWatchingProgress GETs path and reads the whole body. It gives up when the torrent's
// completed bytes have not moved for stall while the body is incomplete: a stalled swarm, not a
// slow one.
func streamWatchingProgress(r *running, path string, tor *torrent.Torrent, stall time.Duration) ([]byte, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+path, nil)
	if err != nil {
		return nil, err
	}
	type result struct {
		body []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		res, err := (&http.Client{Transport: r.client.Transport}).Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			done <- result{err: fmt.Errorf("GET %s: status %d", path, res.StatusCode)}
			return
		}
		b, err := io.ReadAll(res.Body)
		done <- result{b, err}
	}()
	last, lastMoved := tor.BytesCompleted(), time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case res := <-done:
			return res.body, res.err
		case <-tick.C:
		}
		if n := tor.BytesCompleted(); n != last {
			last, lastMoved = n, time.Now()
		} else if time.Since(lastMoved) > stall {
			cancel()
			<-done
			return nil, fmt.Errorf("GET %s: stalled at %d of %d bytes complete for %v", path, n, tor.Length(), stall)
		}
	}
}
