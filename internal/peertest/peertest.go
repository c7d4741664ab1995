// Package peertest starts real peers for tests and benchmarks, all on loopback: a native
// BitTorrent seeder (anacrolix, TCP only) and WebRTC peers built from our own pion stack that join
// swarms through a websocket tracker, as browsers do.
package peertest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"golang.org/x/time/rate"
)

// Seeder is a native BitTorrent peer (TCP on 127.0.0.1, no DHT, no uTP, no WebRTC) that has one
// file of random bytes.
type Seeder struct {
	Client   *torrent.Client
	Torrent  *torrent.Torrent
	MetaInfo *metainfo.MetaInfo
	Info     *metainfo.Info
	// SHA256 is the file's digest, to compare downloads with.
	SHA256 [32]byte
}

// NewSeeder writes size random bytes to dir/name and seeds them with the given piece length.
func NewSeeder(dir, name string, size, pieceLength int64, log *slog.Logger) (*Seeder, error) {
	path := filepath.Join(dir, name)
	sum, err := writeRandomFile(path, size)
	if err != nil {
		return nil, err
	}
	s, err := SeedPath(path, pieceLength, log)
	if err != nil {
		return nil, err
	}
	s.SHA256 = sum
	return s, nil
}

// SeedPath seeds a file or folder that is already on disk, with the given piece length. SHA256 is
// left zero: a folder has no single digest.
func SeedPath(path string, pieceLength int64, log *slog.Logger, opts ...SeedOption) (*Seeder, error) {
	dir := filepath.Dir(path)
	info := &metainfo.Info{PieceLength: pieceLength}
	if err := info.BuildFromFilePath(path); err != nil {
		return nil, err
	}
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		return nil, err
	}
	mi := &metainfo.MetaInfo{InfoBytes: infoBytes}

	cfg := LoopbackClientConfig(dir)
	cfg.DefaultStorage = storage.NewFileOpts(storage.NewFileClientOpts{
		ClientBaseDir:   dir,
		PieceCompletion: storage.NewMapPieceCompletion(),
	})
	if log != nil {
		cfg.Slogger = log.With("component", "seeder")
	}
	for _, o := range opts {
		o(cfg)
	}
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	t, err := cl.AddTorrent(mi)
	if err != nil {
		cl.Close()
		return nil, err
	}
	<-t.GotInfo()
	// Hash the data once so the seeder announces every piece.
	if err := t.VerifyDataContext(context.Background()); err != nil {
		cl.Close()
		return nil, err
	}
	select {
	case <-t.Complete().On():
	case <-time.After(30 * time.Second):
		cl.Close()
		return nil, fmt.Errorf("seeder: data did not verify: %d of %d bytes", t.BytesCompleted(), t.Length())
	}
	return &Seeder{Client: cl, Torrent: t, MetaInfo: mi, Info: info}, nil
}

// LoopbackClientConfig is an anacrolix client's config for tests: TCP on 127.0.0.1 only (no uTP,
// whose dials outlive Client.Close; no IPv6), no DHT, PEX, WebTorrent or port forwarding, seeding,
// data under dir. Nothing it does leaves the machine.
func LoopbackClientConfig(dir string) *torrent.ClientConfig {
	cfg := torrent.NewDefaultClientConfig()
	cfg.DataDir = dir
	cfg.SetListenAddr("127.0.0.1:0")
	cfg.NoDHT = true
	cfg.DisableUTP = true
	cfg.DisableIPv6 = true
	cfg.DisableWebtorrent = true
	cfg.DisablePEX = true
	cfg.NoDefaultPortForwarding = true
	cfg.Seed = true
	return cfg
}

// A SeedOption changes a seeder's client configuration.
type SeedOption func(*torrent.ClientConfig)

// UploadRate caps what the seeder sends, in bytes per second, as a slow uplink would.
func UploadRate(bytesPerSec int) SeedOption {
	return func(cfg *torrent.ClientConfig) {
		cfg.UploadRateLimiter = rate.NewLimiter(rate.Limit(bytesPerSec), 256<<10)
	}
}

// Addr is the seeder's TCP address.
func (s *Seeder) Addr() net.Addr {
	return s.Client.ListenAddrs()[0]
}

// Magnet is the seeder's magnet link with its address as x.pe, the only way to find it.
func (s *Seeder) Magnet() string { return s.MagnetWithPeer(s.Addr().String()) }

// MagnetWithPeer is the torrent's magnet link naming another peer (host:port) as x.pe.
func (s *Seeder) MagnetWithPeer(addr string) string {
	m := s.MetaInfo.Magnet(nil, s.Info)
	m.Params = map[string][]string{"x.pe": {addr}}
	return m.String()
}

// Close stops the seeder.
func (s *Seeder) Close() { s.Client.Close() }

func writeRandomFile(path string, size int64) ([32]byte, error) {
	f, err := os.Create(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		return [32]byte{}, err
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, f.Close()
}

// FileSHA256 hashes a file on disk.
func FileSHA256(path string) ([32]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, err
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// Port returns the port of a host:port string, or 0.
func Port(hostPort string) int {
	_, p, _ := net.SplitHostPort(hostPort)
	n, _ := strconv.Atoi(p)
	return n
}

// FreeLoopbackAddrs returns n 127.0.0.1 addresses nothing listens on, for servers a test starts
// that cannot listen on port 0 (cluster routes name each other's addresses up front). The ports
// are drawn at random below Linux's default ephemeral range (32768–60999), each checked free by
// a listen: a port the kernel hands out for port 0 is also what it hands to outgoing connections,
// and in a busy test run one of those took such a port between its release and the server's
// listen (the embedded NATS of TestClusterNodeOwnTorrent, "not ready in 10 s").
func FreeLoopbackAddrs(tb testing.TB, n int) []string {
	tb.Helper()
	var addrs []string
	var ls []net.Listener
	for tries := 0; len(addrs) < n; tries++ {
		if tries == 1000 {
			tb.Fatalf("no free loopback port below 32768 in %d tries", tries)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+mrand.IntN(12768)))
		if err != nil {
			continue // taken
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return addrs
}
