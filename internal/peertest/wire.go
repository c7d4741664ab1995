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
	pp "github.com/anacrolix/torrent/peer_protocol"
)

// BlockSize is the request size every BitTorrent client (and webtorrent) uses.
const BlockSize = 16 << 10

// WireStats describe one WireDownload.
type WireStats struct {
	Start, Handshake, FirstPiece, Done time.Time
	MaxOutstanding                     int           // the deepest the request pipeline got
	Chokes                             int           // chokes received
	MaxGap                             time.Duration // longest wait between two piece messages
}

// WireDownload speaks BitTorrent itself over conn (as the side that handshakes first) and
// downloads every piece of info, keeping up to pipeline 16 KiB requests outstanding, as
// webtorrent does (it keeps 180–265 outstanding). Plain BitTorrent, no extensions. Every piece is
// checked against its SHA-1. The conn's deadline is pushed forward while data flows; a stall
// longer than idle fails. Piece payloads are read straight into the result, so that a benchmark
// measures the path rather than this client.
func WireDownload(ctx context.Context, conn net.Conn, infoHash, peerID [20]byte, info *metainfo.Info, pipeline int, idle time.Duration) ([]byte, WireStats, error) {
	st := WireStats{Start: time.Now()}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	hs := make([]byte, 0, len(pp.Protocol)+8+20+20)
	hs = append(hs, pp.Protocol...)
	hs = append(hs, make([]byte, 8)...) // no extensions
	hs = append(hs, infoHash[:]...)
	hs = append(hs, peerID[:]...)
	conn.SetDeadline(time.Now().Add(idle))
	if _, err := conn.Write(hs); err != nil {
		return nil, st, fmt.Errorf("handshake write: %w", err)
	}
	r := bufio.NewReaderSize(conn, 1<<16)
	theirs := make([]byte, len(hs))
	if _, err := io.ReadFull(r, theirs); err != nil {
		return nil, st, fmt.Errorf("handshake read: %w", err)
	}
	ihAt := len(pp.Protocol) + 8
	if string(theirs[:len(pp.Protocol)]) != pp.Protocol || !bytes.Equal(theirs[ihAt:ihAt+20], infoHash[:]) {
		return nil, st, errors.New("handshake: wrong protocol or infohash")
	}
	st.Handshake = time.Now()
	if _, err := conn.Write([]byte{0, 0, 0, 1, byte(pp.Interested)}); err != nil {
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

	var req [17]byte
	binary.BigEndian.PutUint32(req[0:], 13)
	req[4] = byte(pp.Request)
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
			binary.BigEndian.PutUint32(req[5:], uint32(b.piece))
			binary.BigEndian.PutUint32(req[9:], uint32(b.begin))
			binary.BigEndian.PutUint32(req[13:], uint32(b.length))
			if _, err := conn.Write(req[:]); err != nil {
				return err
			}
			outstanding[b] = true
			st.MaxOutstanding = max(st.MaxOutstanding, len(outstanding))
		}
		return nil
	}

	var hdr [13]byte // length, id, and a piece message's index and begin
	payload := make([]byte, 0, 1024)
	lastDeadline := time.Now()
	var lastPiece time.Time
	for done < numPieces {
		if now := time.Now(); now.Sub(lastDeadline) > idle/16 {
			conn.SetDeadline(now.Add(idle))
			lastDeadline = now
		}
		if _, err := io.ReadFull(r, hdr[:4]); err != nil {
			return nil, st, fmt.Errorf("read after %d/%d pieces: %w", done, numPieces, err)
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		if n == 0 {
			continue // keep-alive
		}
		if n > 1<<20 {
			return nil, st, fmt.Errorf("message of %d bytes", n)
		}
		if _, err := io.ReadFull(r, hdr[4:5]); err != nil {
			return nil, st, err
		}
		id := pp.MessageType(hdr[4])
		if id == pp.Piece {
			if n < 9 {
				return nil, st, errors.New("bad piece message")
			}
			if _, err := io.ReadFull(r, hdr[5:13]); err != nil {
				return nil, st, err
			}
			b := block{int(binary.BigEndian.Uint32(hdr[5:])), int(binary.BigEndian.Uint32(hdr[9:])), n - 9}
			if !outstanding[b] {
				// A late reply to a request a choke cancelled (we asked again), or junk.
				if _, err := r.Discard(b.length); err != nil {
					return nil, st, err
				}
				continue
			}
			now := time.Now()
			if st.FirstPiece.IsZero() {
				st.FirstPiece = now
			} else {
				st.MaxGap = max(st.MaxGap, now.Sub(lastPiece))
			}
			lastPiece = now
			delete(outstanding, b)
			p := info.Piece(b.piece)
			off := p.Offset() + int64(b.begin)
			if _, err := io.ReadFull(r, data[off:off+int64(b.length)]); err != nil {
				return nil, st, err
			}
			received[b.piece] += int64(b.length)
			if received[b.piece] == p.Length() {
				sum := sha1.Sum(data[p.Offset() : p.Offset()+p.Length()])
				if !bytes.Equal(sum[:], p.V1Hash().Unwrap().Bytes()) {
					return nil, st, fmt.Errorf("piece %d failed its hash check", b.piece)
				}
				done++
			}
			if err := fill(); err != nil {
				return nil, st, err
			}
			continue
		}
		payload = payload[:0]
		payload = append(payload, make([]byte, n-1)...)
		if _, err := io.ReadFull(r, payload); err != nil {
			return nil, st, err
		}
		switch id {
		case pp.Choke:
			choked = true
			st.Chokes++
			// A choke discards our requests: ask again after the next unchoke.
			for b := range outstanding {
				queue = append([]block{b}, queue...)
			}
			clear(outstanding)
		case pp.Unchoke:
			choked = false
		case pp.Have:
			if len(payload) != 4 {
				return nil, st, errors.New("bad have")
			}
			if i := int(binary.BigEndian.Uint32(payload)); i < numPieces && received[i] == 0 {
				enqueue(i)
			}
		case pp.Bitfield:
			for i := range numPieces {
				if i/8 < len(payload) && payload[i/8]&(0x80>>(i%8)) != 0 {
					enqueue(i)
				}
			}
		}
		if err := fill(); err != nil {
			return nil, st, err
		}
	}
	st.Done = time.Now()
	return data, st, nil
}
