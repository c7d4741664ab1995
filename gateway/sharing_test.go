package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmgate/swarmgate/registry"
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

// TestUploadCapTakesTurns: under the upload cap, HTTP answers and peer conns take turns for its
// tokens. An HTTP stream of the demo runs again and again while a browser (a real WebRTC peer)
// fetches the demo: the browser must complete before the HTTP stream has taken four times its
// share. (Before: the HTTP writer waited in the limiter's queue while the conn gave its place up
// and tried later, and the browser got nothing while any HTTP stream ran.)
func TestUploadCapTakesTurns(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.Demo = true; c.UploadRate = 256 << 10; c.UploadSharing = true })
	demo := demoInfoHash(t, r)
	res := r.get(t, "/api/torrents/"+demo+"/metainfo", nil)
	mi, err := metainfo.Load(bytes.NewReader(res.body))
	if err != nil {
		t.Fatalf("metainfo: %v (%d)", err, res.status)
	}
	info, _ := mi.UnmarshalInfo()
	size := info.TotalLength()
	e, _ := r.g.torrents.Get(mustHash(t, demo))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The HTTP stream, over and over, from before the browser comes until it is done.
	streamCtx, stopStream := context.WithCancel(ctx)
	streamDone := make(chan error, 1)
	go func() {
		for streamCtx.Err() == nil {
			req, _ := http.NewRequestWithContext(streamCtx, http.MethodGet, r.base+"/stream/"+demo+"/0", nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				streamDone <- err
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		streamDone <- nil
	}()
	defer func() {
		stopStream()
		<-streamDone
	}()
	waitFor(t, 30*time.Second, "the HTTP stream under way", func() bool { return httpSent(e) > 0 })

	p := newWebRTCPeer(ctx, t, r, false)
	tp, err := p.Join(mi)
	if err != nil {
		t.Fatal(err)
	}
	httpBefore := httpSent(e)
	waitFor(t, 4*time.Minute, "the browser complete, or the HTTP stream taking four times its share", func() bool {
		return tp.BytesCompleted() == size || httpSent(e)-httpBefore > 4*size
	})
	got, sent := tp.BytesCompleted(), httpSent(e)-httpBefore
	t.Logf("while the browser fetched %d of %d bytes, the HTTP stream took %d", got, size, sent)
	if got != size {
		t.Fatalf("the browser got %d of %d bytes while the HTTP stream took %d: the cap's turns went to HTTP", got, size, sent)
	}
}

func httpSent(e *registry.Entry) int64 {
	b, _ := e.Counts()
	return b.ToHTTP
}
