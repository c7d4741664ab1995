package bridge

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// testClientConfig is a torrent client that only talks through what it is given: no DHT, TCP,
// uTP, trackers, UPnP, webtorrent or PEX, and no MSE (browsers don't do it).
func testClientConfig(t *testing.T, dir string) *torrent.ClientConfig {
	cfg := torrent.NewDefaultClientConfig()
	cfg.DataDir = dir
	cfg.NoDHT = true
	cfg.DisableTCP = true
	cfg.DisableUTP = true
	cfg.DisableTrackers = true
	cfg.DisableWebtorrent = true
	cfg.DisablePEX = true
	cfg.NoDefaultPortForwarding = true
	cfg.ListenPort = 0
	cfg.Seed = true
	cfg.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{Preferred: false, RequirePreferred: true}
	cfg.Slogger = testLog.With("test", t.Name())
	return cfg
}

func newClient(t *testing.T, cfg *torrent.ClientConfig) *torrent.Client {
	t.Helper()
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		t.Fatalf("torrent.NewClient: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// A seeder listening on an answering Bridge and a leecher dialing through an offering Bridge:
// the leecher gets the metadata and a few MB over the data channel, byte for byte.
func TestTorrentOverBridge(t *testing.T) {
	ctx := guard(t, 60*time.Second)

	seedDir, leechDir := t.TempDir(), t.TempDir()
	data := make([]byte, 4<<20+12345)
	_, _ = rand.Read(data)
	const name = "payload.bin"
	if err := os.WriteFile(filepath.Join(seedDir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	info := metainfo.Info{PieceLength: 256 << 10}
	if err := info.BuildFromFilePath(filepath.Join(seedDir, name)); err != nil {
		t.Fatal(err)
	}
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	mi := &metainfo.MetaInfo{InfoBytes: infoBytes}
	ih := mi.HashInfoBytes()

	ans := newBridge(t, nil)
	off := newBridge(t, nil)

	seeder := newClient(t, testClientConfig(t, seedDir))
	seeder.AddListener(ans)
	seedT, err := seeder.AddTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}
	if err := seedT.VerifyDataContext(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-seedT.Complete().On():
	case <-ctx.Done():
		t.Fatal("seeder never complete")
	}

	leecher := newClient(t, testClientConfig(t, leechDir))
	leecher.AddDialer(off)
	leechT, _ := leecher.AddTorrentInfoHash(ih)

	meta := PeerMeta{InfoHash: ih, PeerID: seeder.PeerID()}
	signal(t, ctx, off, ans, meta)
	select {
	case addr := <-off.dialable:
		leechT.AddPeers([]torrent.PeerInfo{{Addr: Addr(addr), Id: meta.PeerID, Source: "webrtc"}})
	case <-ctx.Done():
		t.Fatal("no OnDialable")
	}

	select {
	case <-leechT.GotInfo():
	case <-ctx.Done():
		t.Fatal("no metadata over the bridge")
	}
	if !ans.Connected(meta) || !off.Connected(meta) {
		t.Error("Connected = false during the transfer")
	}
	for _, pc := range leechT.PeerConns() {
		if n := pc.Network; n != "webrtc" {
			t.Errorf("leecher's peer conn network %q", n)
		}
	}
	start := time.Now()
	leechT.DownloadAll()
	select {
	case <-leechT.Complete().On():
	case <-ctx.Done():
		t.Fatalf("download incomplete: %d of %d bytes", leechT.BytesCompleted(), len(data))
	}

	got, err := os.ReadFile(filepath.Join(leechDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) || !bytes.Equal(got, data) {
		t.Fatal("downloaded file differs")
	}
	if s := ans.Stats(); s.BytesWritten < uint64(len(data)) {
		t.Errorf("seeder bridge wrote %d bytes, less than the file", s.BytesWritten)
	}
	t.Logf("%d bytes in %v; seeder bridge %+v, leecher bridge %+v", len(data), time.Since(start), ans.Stats(), off.Stats())
	if s := off.Stats(); s.ExtraUnchokes != 0 {
		t.Errorf("the leecher, never unchoking, added %d unchokes", s.ExtraUnchokes)
	}
	// Two seeds have nothing for each other: the torrent client drops the conn itself.

	// Closing the clients closes the conns and with them the PeerConnections.
	leecher.Close()
	seeder.Close()
	eventually(t, ctx, "PeerConnections closed with the clients", func() bool {
		return ans.Stats().PeerConnections == 0 && off.Stats().PeerConnections == 0
	})
}
