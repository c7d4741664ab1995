package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	ih := addMagnetAndWait(t, r, seeder)
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

// TestLyingSeederBanned: aria2c seeds, unverified, a copy of the file with 25 bytes changed, from
// its own loopback address. While it is the only peer, nothing it sends may reach a viewer and it
// must be banned; once an honest seeder is named, the stream completes byte-identical.
func TestLyingSeederBanned(t *testing.T) {
	bin, err := exec.LookPath("aria2c")
	if err != nil {
		if inCITest() {
			t.Fatal("aria2c not found, and CI is set: CI must install it (apt-get install aria2)")
		}
		t.Skip("aria2c not found: skipping (apt-get install aria2; with CI=true this is a failure)")
	}
	const size, pieceLen = 6<<20 + 777, 256 << 10
	honestDir := t.TempDir()
	honest, err := peertest.NewSeeder(honestDir, "movie.mp4", size, pieceLen, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(honest.Close)
	good, err := os.ReadFile(filepath.Join(honestDir, "movie.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	// The liar's copy: one byte changed in 25 places, one in every piece and then some.
	bad := bytes.Clone(good)
	for i := range 25 {
		bad[i*(size/25)+i] ^= 0x5a
	}
	liarDir := t.TempDir()
	writeFile(t, filepath.Join(liarDir, "movie.mp4"), bad)
	torrentFile := filepath.Join(liarDir, "movie.torrent")
	var mi bytes.Buffer
	if err := honest.MetaInfo.Write(&mi); err != nil {
		t.Fatal(err)
	}
	writeFile(t, torrentFile, mi.Bytes())

	// 127.0.0.2 is loopback too: a ban is per IP, and the honest seeder is on 127.0.0.1.
	const liarIP = "127.0.0.2"
	port := freeLoopbackPort(t)
	liarAddr := net.JoinHostPort(liarIP, strconv.Itoa(port))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
		"--enable-peer-exchange=false", "--disable-ipv6=true", "--bt-seed-unverified=true",
		"--check-integrity=false", "--seed-ratio=0.0", "--interface="+liarIP,
		"--listen-port="+strconv.Itoa(port), "--dir="+liarDir, "--summary-interval=0",
		"--console-log-level=warn", "--no-conf=true", torrentFile)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("aria2c output:\n%s", out.String())
		}
	})
	waitFor(t, 20*time.Second, "aria2c to listen on "+liarAddr, func() bool {
		c, err := net.Dial("tcp", liarAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	r := startGateway(t, nil)
	if res := r.postJSON(t, map[string]string{"magnet": honest.MagnetWithPeer(liarAddr)}); res.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", res.status, res.body)
	}
	ih := honest.Torrent.InfoHash().HexString()
	waitGotInfo(t, r.g, ih)

	// A read while only the liar has the data: whatever comes back must be right, and with the
	// liar banned nothing comes back at all.
	reqCtx, stop := context.WithTimeout(context.Background(), 8*time.Second)
	defer stop()
	req, _ := http.NewRequestWithContext(reqCtx, http.MethodGet, r.base+"/stream/"+ih+"/0", nil)
	req.Header.Set("Range", fmt.Sprintf("bytes=0-%d", pieceLen-1))
	if res, err := r.client.Do(req); err == nil {
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode < 300 && !bytes.Equal(body, good[:len(body)]) {
			t.Fatalf("the gateway sent %d bytes of the liar's data (status %d)", len(body), res.StatusCode)
		}
	}
	tor, _ := r.g.client.Torrent(honest.Torrent.InfoHash())
	defer func() {
		if t.Failed() {
			st := tor.Stats()
			t.Logf("gateway: banned %v, %d peer conns, pieces bad %d good %d, read %d", r.g.client.BadPeerIPs(), len(tor.PeerConns()), st.PiecesDirtiedBad.Int64(), st.PiecesDirtiedGood.Int64(), st.BytesReadData.Int64())
		}
	}()
	waitFor(t, 20*time.Second, "the liar to be banned", func() bool {
		return slices.ContainsFunc(r.g.client.BadPeerIPs(), func(ip string) bool {
			a, err := netip.ParseAddr(ip)
			return err == nil && a.Unmap().String() == liarIP
		})
	})
	if m := r.get(t, "/metrics", nil); !bytes.Contains(m.body, []byte("swarmgate_peers_banned 1\n")) {
		t.Errorf("/metrics does not count the ban:\n%s", grepLines(m.body, "banned"))
	}

	// Name the honest seeder: the stream completes, byte-identical.
	if res := r.postJSON(t, map[string]string{"magnet": honest.Magnet()}); res.status >= 300 {
		t.Fatalf("POST again: %d %s", res.status, res.body)
	}
	res := r.get(t, "/stream/"+ih+"/0", nil)
	if res.status != http.StatusOK || !bytes.Equal(res.body, good) {
		t.Fatalf("stream: status %d, %d bytes, identical %v", res.status, len(res.body), bytes.Equal(res.body, good))
	}
}

func grepLines(b []byte, word string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestWebseedEscapedCharacters: every character a BEP 19 client or webtorrent may escape must
// resolve, including those Go keeps escaped in URL.RawPath (& + = $ , ; : @ ! ' ( ) *), whether
// the client escapes them or not.
func TestWebseedEscapedCharacters(t *testing.T) {
	r := startGateway(t, nil)
	parent := t.TempDir()
	names := []string{"Tom & Jerry.mp4", "a+b=c.mp4", "$1,2;3:4@5.mp4", "hi!'(x)*.mp4", "sp ace#?.mp4", "ünï 中.mp4", "100%.mp4"}
	files := map[string][]byte{}
	for i, n := range names {
		files["show/"+n] = randomBytes(3000+i, uint64(20+i))
		writeFile(t, filepath.Join(parent, "show", n), files["show/"+n])
	}
	ih, _ := seedLocal(t, r.g, filepath.Join(parent, "show"))
	for p, want := range files {
		for _, escaped := range []string{escapePath(p), escapeAll(p)} {
			res := r.get(t, "/webseed/"+ih+"/"+escaped, nil)
			if res.status != http.StatusOK || !bytes.Equal(res.body, want) {
				t.Errorf("GET %s: status %d, bytes right %v: %.200s", escaped, res.status, bytes.Equal(res.body, want), res.body)
			}
		}
	}
}

// escapeAll percent-encodes every byte of each path segment that is not a letter or digit, as
// the most eager client would.
func escapeAll(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
