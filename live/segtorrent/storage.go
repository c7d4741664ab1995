package segtorrent

import (
	"context"
	"fmt"
	"sync"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"github.com/swarmgate/swarmgate/live"
)

// segmentStorage is one segment's bytes in memory, an anacrolix storage of one torrent: given
// (seeding) or filled by anacrolix (fetching), piece by piece.
type segmentStorage struct {
	want live.Entry // for a fetch: what the info must describe

	mu   sync.RWMutex
	data []byte
	done []bool
	err  error // why the info was refused
}

func newSegmentStorage(data []byte) *segmentStorage { return &segmentStorage{data: data} }

func (s *segmentStorage) OpenTorrent(_ context.Context, info *metainfo.Info, _ metainfo.Hash) (storage.TorrentImpl, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := info.NumPieces()
	if s.data == nil {
		// The info matches the signed infohash, so its size is the broadcaster's; still, check
		// before allocating what a peer's info says.
		if info.TotalLength() != int64(s.want.Size) || info.Name != live.SegmentName(s.want.Kind, s.want.Seq) {
			s.err = fmt.Errorf("%s segment %d: its torrent describes %q of %d bytes, the entry %d bytes", s.want.Kind, s.want.Seq, info.Name, info.TotalLength(), s.want.Size)
			return storage.TorrentImpl{}, s.err
		}
		s.data = make([]byte, info.TotalLength())
		s.done = make([]bool, n)
	} else {
		s.done = make([]bool, n)
		for i := range s.done {
			s.done[i] = true
		}
	}
	return storage.TorrentImpl{
		Piece: func(p metainfo.Piece) storage.PieceImpl { return segmentPiece{s, p.Index(), p.Offset(), p.Length()} },
		Close: func() error { return nil },
	}, nil
}

func (s *segmentStorage) openErr() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.err
}

func (s *segmentStorage) bytes() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.data
}

type segmentPiece struct {
	s           *segmentStorage
	index       int
	off, length int64
}

func (p segmentPiece) ReadAt(b []byte, off int64) (int, error) {
	p.s.mu.RLock()
	defer p.s.mu.RUnlock()
	if off >= p.length {
		return 0, fmt.Errorf("read at %d beyond piece of %d bytes", off, p.length)
	}
	n := copy(b, p.s.data[p.off+off:p.off+p.length])
	if n < len(b) {
		return n, fmt.Errorf("short read: %d of %d bytes", n, len(b))
	}
	return n, nil
}

func (p segmentPiece) WriteAt(b []byte, off int64) (int, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if off+int64(len(b)) > p.length {
		return 0, fmt.Errorf("write of %d bytes at %d beyond piece of %d bytes", len(b), off, p.length)
	}
	return copy(p.s.data[p.off+off:], b), nil
}

func (p segmentPiece) MarkComplete() error {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.s.done[p.index] = true
	return nil
}

func (p segmentPiece) MarkNotComplete() error {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.s.done[p.index] = false
	return nil
}

func (p segmentPiece) Completion() storage.Completion {
	p.s.mu.RLock()
	defer p.s.mu.RUnlock()
	return storage.Completion{Ok: true, Complete: p.s.done[p.index]}
}
