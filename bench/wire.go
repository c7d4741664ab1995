package main

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

// This is internal/peertest's WireDownload with timestamps (handshake, first piece, done) and
// piece payloads read straight into the result instead of a fresh buffer per message. The protocol
// behaviour is the same: plain BitTorrent, no extensions, one data-channel message per request,
// up to pipeline 16 KiB requests outstanding (webtorrent keeps 180–265).

const blockSize = 16 << 10

const (
	msgChoke    = 0
	msgUnchoke  = 1
	msgInterest = 2
	msgHave     = 4
	msgBitfield = 5
	msgRequest  = 6
	msgPiece    = 7
)

// wireResult describes one wire download.
type wireResult struct {
	Start, Handshake, FirstPiece, Done time.Time
	MaxOutstanding, Chokes             int
	MaxGap                             time.Duration // longest wait between two piece messages
}

func wireDownload(ctx context.Context, conn net.Conn, infoHash, peerID [20]byte, info *metainfo.Info, pipeline int, idle time.Duration) ([]byte, wireResult, error) {
	res := wireResult{Start: time.Now()}
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
		return nil, res, fmt.Errorf("handshake write: %w", err)
	}
	r := bufio.NewReaderSize(conn, 1<<16)
	var theirs [68]byte
	if _, err := io.ReadFull(r, theirs[:]); err != nil {
		return nil, res, fmt.Errorf("handshake read: %w", err)
	}
	if !bytes.Equal(theirs[1:20], []byte("BitTorrent protocol")) || !bytes.Equal(theirs[28:48], infoHash[:]) {
		return nil, res, errors.New("handshake: wrong protocol or infohash")
	}
	res.Handshake = time.Now()
	if err := writeMsg(conn, msgInterest, nil); err != nil {
		return nil, res, err
	}

	total := info.TotalLength()
	numPieces := info.NumPieces()
	data := make([]byte, total)
	received := make([]int64, numPieces)
	type block struct{ piece, begin, length int }
	var queue []block
	queued := make([]bool, numPieces)
	outstanding := map[block]bool{}
	choked := true
	done := 0
	var req [17]byte
	binary.BigEndian.PutUint32(req[0:], 13)
	req[4] = msgRequest

	enqueue := func(i int) {
		if queued[i] {
			return
		}
		queued[i] = true
		plen := int(info.Piece(i).Length())
		for b := 0; b < plen; b += blockSize {
			queue = append(queue, block{i, b, min(blockSize, plen-b)})
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
			res.MaxOutstanding = max(res.MaxOutstanding, len(outstanding))
		}
		return nil
	}

	var hdr [13]byte
	payload := make([]byte, 0, 1024)
	lastDeadline := time.Now()
	var lastPiece time.Time
	for done < numPieces {
		if now := time.Now(); now.Sub(lastDeadline) > idle/16 {
			conn.SetDeadline(now.Add(idle))
			lastDeadline = now
		}
		if _, err := io.ReadFull(r, hdr[:4]); err != nil {
			return nil, res, fmt.Errorf("read after %d/%d pieces: %w", done, numPieces, err)
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		if n == 0 {
			continue // keepalive
		}
		if n > 1<<20 {
			return nil, res, fmt.Errorf("message of %d bytes", n)
		}
		if _, err := io.ReadFull(r, hdr[4:5]); err != nil {
			return nil, res, err
		}
		id := hdr[4]
		if id == msgPiece {
			if n < 9 {
				return nil, res, errors.New("bad piece message")
			}
			if _, err := io.ReadFull(r, hdr[5:13]); err != nil {
				return nil, res, err
			}
			b := block{int(binary.BigEndian.Uint32(hdr[5:])), int(binary.BigEndian.Uint32(hdr[9:])), n - 9}
			if !outstanding[b] {
				// A late reply to a request a choke cancelled (we asked again), or junk.
				if _, err := r.Discard(b.length); err != nil {
					return nil, res, err
				}
				continue
			}
			now := time.Now()
			if res.FirstPiece.IsZero() {
				res.FirstPiece = now
			} else {
				res.MaxGap = max(res.MaxGap, now.Sub(lastPiece))
			}
			lastPiece = now
			delete(outstanding, b)
			p := info.Piece(b.piece)
			off := p.Offset() + int64(b.begin)
			if _, err := io.ReadFull(r, data[off:off+int64(b.length)]); err != nil {
				return nil, res, err
			}
			received[b.piece] += int64(b.length)
			if received[b.piece] == p.Length() {
				sum := sha1.Sum(data[p.Offset() : p.Offset()+p.Length()])
				if !bytes.Equal(sum[:], p.V1Hash().Unwrap().Bytes()) {
					return nil, res, fmt.Errorf("piece %d failed its hash check", b.piece)
				}
				done++
			}
			if err := fill(); err != nil {
				return nil, res, err
			}
			continue
		}
		payload = payload[:0]
		payload = append(payload, make([]byte, n-1)...)
		if _, err := io.ReadFull(r, payload); err != nil {
			return nil, res, err
		}
		switch id {
		case msgChoke:
			choked = true
			res.Chokes++
			for b := range outstanding {
				queue = append([]block{b}, queue...)
			}
			clear(outstanding)
		case msgUnchoke:
			choked = false
		case msgHave:
			if len(payload) != 4 {
				return nil, res, errors.New("bad have")
			}
			if i := int(binary.BigEndian.Uint32(payload)); i < numPieces && received[i] == 0 {
				enqueue(i)
			}
		case msgBitfield:
			for i := range numPieces {
				if i/8 < len(payload) && payload[i/8]&(0x80>>(i%8)) != 0 {
					enqueue(i)
				}
			}
		}
		if err := fill(); err != nil {
			return nil, res, err
		}
	}
	res.Done = time.Now()
	return data, res, nil
}

func writeMsg(w io.Writer, id byte, payload []byte) error {
	buf := make([]byte, 5+len(payload))
	binary.BigEndian.PutUint32(buf, uint32(1+len(payload)))
	buf[4] = id
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}
