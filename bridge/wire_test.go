package bridge

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	pp "github.com/anacrolix/torrent/peer_protocol"
)

func handshake() []byte {
	hs := make([]byte, handshakeLen)
	copy(hs, pp.Protocol)
	return hs
}

func msg(id pp.MessageType, payload int) []byte {
	m := make([]byte, 5+payload)
	binary.BigEndian.PutUint32(m, uint32(1+payload))
	m[4] = byte(id)
	return m
}

// wireStream is a handshake and some messages, with the offsets where messages end.
func wireStream() (stream []byte, ids []pp.MessageType, boundaries []int) {
	stream = handshake()
	boundaries = []int{len(stream)}
	add := func(m []byte) {
		stream = append(stream, m...)
		boundaries = append(boundaries, len(stream))
		if len(m) > 4 { // not a keep-alive
			ids = append(ids, pp.MessageType(m[4]))
		}
	}
	add([]byte{0, 0, 0, 0}) // keep-alive
	add(msg(pp.Extended, 40))
	add(msg(pp.Unchoke, 0))
	add(msg(pp.Piece, 8+16<<10))
	add(msg(pp.Interested, 0))
	add([]byte{0, 0, 0, 0})
	add(msg(pp.Have, 4))
	add(msg(pp.Choke, 0))
	return
}

func TestWireParserMessages(t *testing.T) {
	stream, wantIDs, _ := wireStream()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var w wireParser
		var ids []pp.MessageType
		for p := stream; len(p) > 0; {
			n := min(len(p), 1+rng.IntN(30))
			if got := w.feed(p[:n], false, func(id pp.MessageType) { ids = append(ids, id) }); got != n {
				t.Fatalf("feed without stop consumed %d of %d", got, n)
			}
			p = p[n:]
		}
		if !slices.Equal(ids, wantIDs) {
			t.Fatalf("ids %v, want %v", ids, wantIDs)
		}
		if !w.atBoundary() {
			t.Fatal("not at a boundary after the last message")
		}
	}
}

func TestWireParserStopsAtEveryBoundary(t *testing.T) {
	stream, _, boundaries := wireStream()
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		var w wireParser
		var stops []int
		off := 0
		for off < len(stream) {
			n := min(len(stream)-off, 1+rng.IntN(40))
			got := w.feed(stream[off:off+n], true, nil)
			if got < 1 || got > n {
				t.Fatalf("feed consumed %d of %d", got, n)
			}
			off += got
			if w.atBoundary() {
				stops = append(stops, off)
			} else if got < n {
				t.Fatalf("stopped at %d, not a boundary", off)
			}
		}
		if !slices.Equal(stops, boundaries) {
			t.Fatalf("boundaries seen %v, want %v", stops, boundaries)
		}
	}
}

func TestWireParserIgnoresObfuscatedStreams(t *testing.T) {
	var w wireParser
	called := false
	if n := w.feed([]byte{0x42, 0, 0, 0, 1, 2}, true, func(pp.MessageType) { called = true }); n != 6 {
		t.Fatalf("consumed %d", n)
	}
	if called || w.atBoundary() {
		t.Fatal("followed a stream that is not plain BitTorrent")
	}
	var fresh wireParser
	if fresh.atBoundary() {
		t.Fatal("a boundary before the handshake: an unchoke could precede it")
	}
}

// Our side unchokes, the remote says interested while our output is in the middle of a piece:
// the remote must see the whole piece, then an extra unchoke. When our side is idle the unchoke
// goes out at once; after we choke, interested adds nothing.
func TestUnchokeShim(t *testing.T) {
	ctx := guard(t, 20*time.Second)
	off, ans := newBridge(t, nil), newBridge(t, nil)
	remote, ours := connect(t, ctx, off, ans)
	write := func(c *Conn, b []byte) {
		t.Helper()
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(want []byte, what string) {
		t.Helper()
		if got := readFull(t, remote, len(want)); !bytes.Equal(got, want) {
			t.Fatalf("%s: remote got %s", what, hexdump(got[:min(len(got), 40)]))
		}
	}

	hs := handshake()
	write(ours, append(slices.Clone(hs), msg(pp.Unchoke, 0)...))
	expect(append(slices.Clone(hs), msg(pp.Unchoke, 0)...), "handshake and unchoke")

	piece := msg(7, 8+32<<10)
	for i := 13; i < len(piece); i++ {
		piece[i] = byte(i)
	}
	write(ours, piece[:1013])
	write(remote, append(slices.Clone(hs), msg(pp.Interested, 0)...))
	readFull(t, ours, handshakeLen+5)
	eventually(t, ctx, "unchoke pending mid-message", func() bool {
		ours.writeMu.Lock()
		defer ours.writeMu.Unlock()
		return ours.injectPending && !ours.injecting.Load()
	})
	write(ours, piece[1013:])
	expect(append(slices.Clone(piece), msg(pp.Unchoke, 0)...), "piece then the extra unchoke")

	// Idle: the unchoke goes out without any write of ours.
	write(remote, msg(pp.Interested, 0))
	readFull(t, ours, 5)
	expect(msg(pp.Unchoke, 0), "extra unchoke while idle")

	// Choked: nothing extra.
	write(ours, msg(pp.Choke, 0))
	expect(msg(pp.Choke, 0), "choke")
	write(remote, msg(pp.Interested, 0))
	readFull(t, ours, 5)
	_ = remote.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := remote.Read(make([]byte, 5)); !isTimeout(err) {
		t.Fatalf("after choke, interested produced %d bytes (%v)", n, err)
	}
	if got := ours.Stats().ExtraUnchokes; got != 2 {
		t.Fatalf("ExtraUnchokes = %d, want 2", got)
	}
	if got := remote.Stats().ExtraUnchokes; got != 0 {
		t.Fatalf("remote ExtraUnchokes = %d, want 0", got)
	}
}
