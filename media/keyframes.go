package media

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
)

// ErrNoIndex means the container keeps no keyframe index this package can read: AVI, MPEG-TS, a
// Matroska file without Cues, a fragmented MP4, a file that is no video at all, or an index that
// is damaged. Keyframes' other errors are the reader's.
var ErrNoIndex = errors.New("no keyframe index")

// maxIndexEntries bounds what a file's counts can make us allocate: 10 million samples or cue
// points is more than 50 hours of 50 fps video.
const maxIndexEntries = 10_000_000

// Keyframes returns the presentation times, in seconds and ascending, of the keyframes of the
// file's first video track, from the container's index: Matroska/WebM Cues, or the sample tables
// of MP4/MOV (stss, stts, ctts, and the edit list). It reads only the index: a few small ranges of
// r, which suits a file still downloading, whose reads wait for their pieces.
//
// The times are on ffmpeg's timeline: the numbers ffprobe prints as pts_time for those frames
// (ffprobe -select_streams v:0 -skip_frame nokey -show_entries frame=pts_time), so the cuts of a
// stream-copying ffmpeg fall where the list says.
//
// A Matroska muxer may cue only some keyframes (ffmpeg and mkvmerge cue every video keyframe);
// then the list holds those, each still a place to cut.
//
// Errors that say the file has no usable index wrap ErrNoIndex; any other is a read error.
func Keyframes(r io.ReaderAt, size int64) ([]float64, error) {
	src := newIndexReader(r, size)
	head, err := src.read(0, int(min(size, 16)))
	if err != nil {
		return nil, err
	}
	var times []float64
	switch {
	case bytes.HasPrefix(head, ebmlMagic):
		times, err = mkvKeyframes(src)
	case isMP4(head):
		times, err = mp4Keyframes(src)
	default:
		return nil, fmt.Errorf("%w: not a Matroska or MP4 file", ErrNoIndex)
	}
	if err != nil {
		return nil, err
	}
	if len(times) == 0 {
		return nil, fmt.Errorf("%w: the index lists no keyframe", ErrNoIndex)
	}
	slices.Sort(times)
	return slices.Compact(times), nil
}

// noIndex is a format error: the file's index is missing or damaged.
func noIndex(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrNoIndex}, args...)...)
}

// indexReader reads ranges of the file through a few cached blocks, so that walking an index
// element by element costs one read per block rather than one per header, and a large element
// can be skipped without reading it.
type indexReader struct {
	r      io.ReaderAt
	size   int64
	blocks []cachedBlock // most recently used last
}

type cachedBlock struct {
	off  int64
	data []byte
}

const (
	indexBlockSize = 32 << 10
	indexBlocks    = 4
)

func newIndexReader(r io.ReaderAt, size int64) *indexReader {
	return &indexReader{r: r, size: max(size, 0)}
}

// read returns n bytes at off. The slice may be the cache's: callers copy what they keep.
func (s *indexReader) read(off int64, n int) ([]byte, error) {
	if off < 0 || n < 0 || off > s.size || int64(n) > s.size-off {
		return nil, noIndex("a read of %d bytes at %d is past the end of the file (%d bytes)", n, off, s.size)
	}
	if n > indexBlockSize {
		buf := make([]byte, n)
		if err := s.readFull(buf, off); err != nil {
			return nil, err
		}
		return buf, nil
	}
	first := off / indexBlockSize * indexBlockSize
	b, err := s.block(first)
	if err != nil {
		return nil, err
	}
	if end := off + int64(n); end <= first+int64(len(b)) {
		return b[off-first : end-first], nil
	}
	// The range spans two blocks.
	next, err := s.block(first + indexBlockSize)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, n)
	buf = append(buf, b[off-first:]...)
	return append(buf, next[:n-len(buf)]...), nil
}

func (s *indexReader) block(off int64) ([]byte, error) {
	for i, b := range s.blocks {
		if b.off == off {
			s.blocks = append(append(s.blocks[:i:i], s.blocks[i+1:]...), b)
			return b.data, nil
		}
	}
	buf := make([]byte, min(indexBlockSize, s.size-off))
	if err := s.readFull(buf, off); err != nil {
		return nil, err
	}
	if len(s.blocks) == indexBlocks {
		s.blocks = s.blocks[1:]
	}
	s.blocks = append(s.blocks, cachedBlock{off, buf})
	return buf, nil
}

func (s *indexReader) readFull(buf []byte, off int64) error {
	n, err := s.r.ReadAt(buf, off)
	if n == len(buf) {
		return nil // io.ReaderAt may say io.EOF with a full read at the end
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("reading %d bytes at %d: %w", len(buf), off, err)
}
