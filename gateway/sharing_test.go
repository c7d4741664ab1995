package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
)

// Wire message ids (BEP 3, BEP 6).
const (
	msgUnchoke    = 1
	msgInterested = 2
	msgRequest    = 6
	msgPiece      = 7
	msgReject     = 16
)

func writeMsg(t *testing.T, c net.Conn, id byte, payload ...uint32) {
	t.Helper()
	b := make([]byte, 5+4*len(payload))
	binary.BigEndian.PutUint32(b, uint32(1+4*len(payload)))
	b[4] = id
	for i, v := range payload {
		binary.BigEndian.PutUint32(b[5+4*i:], v)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// readUntil reads messages until one of ids comes, and returns it and its payload.
func readUntil(t *testing.T, c net.Conn, within time.Duration, ids ...byte) (byte, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	defer c.SetReadDeadline(time.Time{})
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			t.Fatalf("waiting for message %v: %v", ids, err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 {
			continue // keepalive
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		if bytes.IndexByte(ids, b[0]) >= 0 {
			return b[0], b[1:]
		}
	}
}

// TestUploadSharing: with the upload cap reached, a browser's request for a piece another
// browser holds is turned down once (a BEP 6 reject) and served when asked again; a piece no
// other browser has is served at once; with --upload-sharing off nothing is turned down.
func TestUploadSharing(t *testing.T) {
	for _, sharing := range []bool{true, false} {
		name := map[bool]string{true: "on", false: "off"}[sharing]
		t.Run(name, func(t *testing.T) {
			r := startGateway(t, func(c *Config) { c.Demo = true; c.UploadRate = 256 << 10; c.UploadSharing = sharing })
			demo := demoInfoHash(t, r)
			res := r.get(t, "/api/torrents/"+demo+"/metainfo", nil)
			mi, err := metainfo.Load(bytes.NewReader(res.body))
			if err != nil {
				t.Fatalf("metainfo: %v (%d)", err, res.status)
			}
			info, _ := mi.UnmarshalInfo()
			if info.NumPieces() < 4 {
				t.Fatalf("the demo has %d pieces", info.NumPieces())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()

			// Browser a fetches piece 0 only, and stays (it is no seed).
			a := newWebRTCPeer(ctx, t, r, false)
			ta, err := a.Join(mi)
			if err != nil {
				t.Fatal(err)
			}
			ta.CancelPieces(1, info.NumPieces())
			waitFor(t, 60*time.Second, "browser a holding piece 0", func() bool { return ta.Piece(0).State().Complete })

			// Browser b: a raw wire, fast extension on.
			b := newWebRTCPeer(ctx, t, r, true)
			conn, err := b.Connect(ctx, mi.HashInfoBytes(), info.TotalLength())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ih := mi.HashInfoBytes()
			pid := b.PeerID()
			hs := append([]byte("\x13BitTorrent protocol\x00\x00\x00\x00\x00\x00\x00\x04"), ih[:]...)
			if _, err := conn.Write(append(hs, pid[:]...)); err != nil {
				t.Fatal(err)
			}
			var theirs [68]byte
			if _, err := io.ReadFull(conn, theirs[:]); err != nil {
				t.Fatal(err)
			}
			if theirs[27]&0x04 == 0 {
				t.Fatal("the gateway's handshake has no fast extension")
			}
			writeMsg(t, conn, msgInterested)
			readUntil(t, conn, 30*time.Second, msgUnchoke)

			// The cap is reached: 2 MiB owed at 256 KiB/s.
			for range 8 {
				r.g.uploadLimit.ReserveN(time.Now(), uploadBurst)
			}
			writeMsg(t, conn, msgRequest, 0, 0, 16<<10)
			id, _ := readUntil(t, conn, 30*time.Second, msgPiece, msgReject)
			if sharing && id != msgReject {
				t.Fatalf("piece 0, which browser a holds, while the cap is reached: message %d, want a reject (%d)", id, msgReject)
			}
			if !sharing && id != msgPiece {
				t.Fatalf("sharing off: message %d, want the piece", id)
			}
			if sharing {
				// Asked again later, it is served.
				time.Sleep(torrent.UploadSharingDeclineWindow + 50*time.Millisecond)
				writeMsg(t, conn, msgRequest, 0, 0, 16<<10)
				if id, _ := readUntil(t, conn, 60*time.Second, msgPiece, msgReject); id != msgPiece {
					t.Fatalf("piece 0 asked again: message %d, want the piece", id)
				}
				if n := r.g.client.DeclinedRequests(); n != 1 {
					t.Errorf("%d requests declined, want 1", n)
				}
			}
			// A piece no other browser has is served even while the cap is reached.
			for range 8 {
				r.g.uploadLimit.ReserveN(time.Now(), uploadBurst)
			}
			writeMsg(t, conn, msgRequest, 3, 0, 16<<10)
			if id, p := readUntil(t, conn, 60*time.Second, msgPiece, msgReject); id != msgPiece || binary.BigEndian.Uint32(p) != 3 {
				t.Fatalf("piece 3, which nobody else has: message %d, want the piece", id)
			}
		})
	}
}
