package peertest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/anacrolix/torrent/metainfo"
)

// BlockSize is the request size every BitTorrent client (and webtorrent) uses.
const BlockSize = 16 << 10

// Message ids of the BitTorrent peer wire protocol (BEP 3).
const (
	msgChoke         = 0
	msgUnchoke       = 1
	msgInterested    = 2
	msgNotInterested = 3
	msgHave          = 4
	msgBitfield      = 5
	msgRequest       = 6
	msgPiece         = 7
)

// WireStats describe one WireDownload.
type WireStats struct {
	MaxOutstanding int // the deepest the request pipeline got
	Chokes         int
}

// WireDownload speaks BitTorrent itself over conn (as the side that handshakes first) and
// downloads every piece of info, keeping up to pipeline 16 KiB requests outstanding, as
// webtorrent does (it keeps 180–265 outstanding). Every piece is checked against its SHA-1. The
// conn's deadline is pushed forward while data flows; a stall longer than idle fails.
func WireDownload(ctx context.Context, conn net.Conn, infoHash, peerID [20]byte, info *metainfo.Info, pipeline int, idle time.Duration) ([]byte, WireStats, error) {
	var st WireStats
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	hs := make([]byte, 0, 68)
	hs = append(hs, 19)
	hs = append(hs, "BitTorrent protocol"...)
	hs = append(hs, make([]byte, 8)...)
	hs = append(hs, infoHash[:]...)
	hs = append(hs, peerID[:]...)
	conn.SetDeadline(time.Now().Add(idle))
	if _, err := conn.Write(hs); err != nil {
		return nil, st, fmt.Errorf("handshake write: %w", err)
	}
	r := bufio.NewReaderSize(conn, 1<<16)
	var theirs [68]byte
	if _, err := io.ReadFull(r, theirs[:]); err != nil {
		return nil, st, fmt.Errorf("handshake read: %w", err)
	}
	if !bytes.Equal(theirs[1:20], []byte("BitTorrent protocol")) || !bytes.Equal(theirs[28:48], infoHash[:]) {
		return nil, st, errors.New("handshake: wrong protocol or infohash")
	}
	if err := writeMsg(conn, msgInterested, nil); err != nil {
		return nil, st, err
	}

	total := info.TotalLength()
	numPieces := info.NumPieces()
	data := make([]byte, total)
	received := make([]int64, numPieces) // bytes of the piece we hold
	type block struct{ piece, begin, length int }
	var queue []block // blocks not yet requested, in order
	queued := make([]bool, numPieces)
	outstanding := map[block]bool{}
	choked := true
	done := 0

	enqueue := func(i int) {
		if queued[i] {
			return
		}
		queued[i] = true
		plen := int(info.Piece(i).Length())
		for b := 0; b < plen; b += BlockSize {
			queue = append(queue, block{i, b, min(BlockSize, plen-b)})
		}
	}
	fill := func() error {
		for !choked && len(outstanding) < pipeline && len(queue) > 0 {
			b := queue[0]
			queue = queue[1:]
			var p [12]byte
			binary.BigEndian.PutUint32(p[0:], uint32(b.piece))
			binary.BigEndian.PutUint32(p[4:], uint32(b.begin))
			binary.BigEndian.PutUint32(p[8:], uint32(b.length))
			if err := writeMsg(conn, msgRequest, p[:]); err != nil {
				return err
			}
			outstanding[b] = true
			st.MaxOutstanding = max(st.MaxOutstanding, len(outstanding))
		}
		return nil
	}

	for done < numPieces {
		conn.SetDeadline(time.Now().Add(idle))
		var lenBuf [4]byte
		if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
			return nil, st, fmt.Errorf("read after %d/%d pieces: %w", done, numPieces, err)
		}
		n := binary.BigEndian.Uint32(lenBuf[:])
		if n == 0 {
			continue // keepalive
		}
		if n > 1<<20 {
			return nil, st, fmt.Errorf("message of %d bytes", n)
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(r, msg); err != nil {
			return nil, st, err
		}
		id, payload := msg[0], msg[1:]
		switch id {
		case msgChoke:
			choked = true
			st.Chokes++
			// A choke discards our requests: ask again after the next unchoke.
			for b := range outstanding {
				queue = append([]block{b}, queue...)
			}
			clear(outstanding)
		case msgUnchoke:
			choked = false
		case msgHave:
			if len(payload) != 4 {
				return nil, st, errors.New("bad have")
			}
			i := int(binary.BigEndian.Uint32(payload))
			if i < numPieces {
				if received[i] == 0 {
					enqueue(i)
				}
			}
		case msgBitfield:
			for i := range numPieces {
				if i/8 < len(payload) && payload[i/8]&(0x80>>(i%8)) != 0 {
					enqueue(i)
				}
			}
		case msgPiece:
			if len(payload) < 8 {
				return nil, st, errors.New("bad piece message")
			}
			b := block{int(binary.BigEndian.Uint32(payload[0:])), int(binary.BigEndian.Uint32(payload[4:])), len(payload) - 8}
			if !outstanding[b] {
				continue // late reply to a request a choke cancelled; we asked again
			}
			delete(outstanding, b)
			p := info.Piece(b.piece)
			copy(data[p.Offset()+int64(b.begin):], payload[8:])
			received[b.piece] += int64(b.length)
			if received[b.piece] == p.Length() {
				sum := sha1.Sum(data[p.Offset() : p.Offset()+p.Length()])
				if !bytes.Equal(sum[:], p.V1Hash().Unwrap().Bytes()) {
					return nil, st, fmt.Errorf("piece %d failed its hash check", b.piece)
				}
				done++
			}
		}
		if err := fill(); err != nil {
			return nil, st, err
		}
	}
	return data, st, nil
}

func writeMsg(w io.Writer, id byte, payload []byte) error {
	buf := make([]byte, 5+len(payload))
	binary.BigEndian.PutUint32(buf, uint32(1+len(payload)))
	buf[4] = id
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}
