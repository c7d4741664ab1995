package media

import (
	"math/bits"
)

// Matroska (and WebM, its subset) keeps its keyframe index in Cues: cue points, each a time and
// the tracks with a keyframe there. The SeekHead at the start of the Segment says where Cues,
// Tracks and Info are; muxers write Cues after the clusters, so one read at the end finds them.

var ebmlMagic = []byte{0x1A, 0x45, 0xDF, 0xA3}

// Element IDs, with their length marker bits, as the Matroska specification writes them.
const (
	mkvEBML              = 0x1A45DFA3
	mkvSegment           = 0x18538067
	mkvSeekHead          = 0x114D9B74
	mkvSeek              = 0x4DBB
	mkvSeekID            = 0x53AB
	mkvSeekPosition      = 0x53AC
	mkvInfo              = 0x1549A966
	mkvTimestampScale    = 0x2AD7B1
	mkvTracks            = 0x1654AE6B
	mkvTrackEntry        = 0xAE
	mkvTrackNumber       = 0xD7
	mkvTrackType         = 0x83
	mkvCues              = 0x1C53BB6B
	mkvCuePoint          = 0xBB
	mkvCueTime           = 0xB3
	mkvCueTrackPositions = 0xB7
	mkvCueTrack          = 0xF7
	mkvCluster           = 0x1F43B675
	mkvChapters          = 0x1043A770
	mkvTags              = 0x1254C367
	mkvAttachments       = 0x1941A469

	mkvTrackTypeVideo = 1
	// mkvMaxSeekHeads bounds the SeekHeads followed (a SeekHead may point to another).
	mkvMaxSeekHeads = 8
	// mkvMaxTopLevel bounds the elements scanned before the first Cluster.
	mkvMaxTopLevel = 1024
)

// ebmlElement is an element's place in the file; size is -1 when unknown (written while
// streaming: the element ends where the next element of its level or above starts).
type ebmlElement struct {
	id         uint32
	start      int64 // of the header
	data, size int64
}

func (e ebmlElement) end(parentEnd int64) int64 {
	if e.size < 0 {
		return parentEnd
	}
	return e.data + e.size
}

type mkvFile struct {
	src            *indexReader
	segData        int64 // where the Segment's payload starts: SeekPositions count from there
	segEnd         int64
	found          map[uint32]ebmlElement // Info, Tracks and Cues, where they are
	seeks          map[uint32][]int64     // SeekHead entries by element ID
	seekHeadsSeen  map[int64]bool
	timestampScale uint64 // nanoseconds per tick
	videoTrack     uint64
}

func mkvKeyframes(src *indexReader) ([]float64, error) {
	m := &mkvFile{src: src, found: map[uint32]ebmlElement{}, seeks: map[uint32][]int64{},
		seekHeadsSeen: map[int64]bool{}, timestampScale: 1_000_000}
	if err := m.findSegment(); err != nil {
		return nil, err
	}
	if err := m.scan(); err != nil {
		return nil, err
	}
	for _, id := range []uint32{mkvInfo, mkvTracks, mkvCues} {
		if _, ok := m.found[id]; ok {
			continue
		}
		for _, pos := range m.seeks[id] {
			el, err := m.header(m.segData+pos, m.segEnd)
			if err != nil {
				return nil, err
			}
			if el.id != id {
				return nil, noIndex("matroska: the SeekHead points to element %#x at %d, found %#x", id, el.start, el.id)
			}
			m.found[id] = el
			break
		}
	}
	if info, ok := m.found[mkvInfo]; ok {
		if err := m.parseInfo(info); err != nil {
			return nil, err
		}
	}
	tracks, ok := m.found[mkvTracks]
	if !ok {
		return nil, noIndex("matroska: no Tracks")
	}
	if err := m.parseTracks(tracks); err != nil {
		return nil, err
	}
	if m.videoTrack == 0 {
		return nil, noIndex("matroska: no video track")
	}
	cues, ok := m.found[mkvCues]
	if !ok {
		return nil, noIndex("matroska: no Cues (none before the first Cluster, and the SeekHead names none)")
	}
	return m.parseCues(cues)
}

// findSegment skips the EBML header to the Segment.
func (m *mkvFile) findSegment() error {
	pos := int64(0)
	for range 8 {
		el, err := m.header(pos, m.src.size)
		if err != nil {
			return err
		}
		if el.id == mkvSegment {
			m.segData = el.data
			m.segEnd = m.src.size
			if el.size >= 0 && el.size < m.src.size-el.data {
				m.segEnd = el.data + el.size
			}
			return nil
		}
		if el.size < 0 {
			break
		}
		pos = el.data + el.size
	}
	return noIndex("matroska: no Segment")
}

// scan walks the Segment's top-level elements up to the first Cluster, noting where Info,
// Tracks and Cues are and reading SeekHeads, which say where the rest are.
func (m *mkvFile) scan() error {
	pos := m.segData
	for range mkvMaxTopLevel {
		if pos >= m.segEnd {
			return nil
		}
		el, err := m.header(pos, m.segEnd)
		if err != nil {
			return err
		}
		switch el.id {
		case mkvCluster:
			return nil
		case mkvSeekHead:
			if err := m.parseSeekHead(el); err != nil {
				return err
			}
		case mkvInfo, mkvTracks, mkvCues:
			if _, ok := m.found[el.id]; !ok {
				m.found[el.id] = el
			}
		}
		if el.size < 0 {
			return nil // where it ends is known only by parsing it
		}
		pos = el.data + el.size
	}
	return nil
}

func (m *mkvFile) parseSeekHead(el ebmlElement) error {
	if m.seekHeadsSeen[el.start] || len(m.seekHeadsSeen) >= mkvMaxSeekHeads {
		return nil
	}
	m.seekHeadsSeen[el.start] = true
	var more []int64
	err := m.children(el, func(seek ebmlElement) error {
		if seek.id != mkvSeek {
			return nil
		}
		var id uint32
		pos := int64(-1)
		err := m.children(seek, func(c ebmlElement) error {
			switch c.id {
			case mkvSeekID:
				b, err := m.payload(c, 4)
				if err != nil {
					return err
				}
				for _, x := range b {
					id = id<<8 | uint32(x)
				}
			case mkvSeekPosition:
				v, err := m.uint(c)
				if err != nil {
					return err
				}
				if v < uint64(m.segEnd-m.segData) {
					pos = int64(v)
				}
			}
			return nil
		})
		if err != nil || pos < 0 {
			return err
		}
		if id == mkvSeekHead {
			more = append(more, pos)
		} else if len(m.seeks[id]) < 4 {
			m.seeks[id] = append(m.seeks[id], pos)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, pos := range more {
		next, err := m.header(m.segData+pos, m.segEnd)
		if err != nil {
			return err
		}
		if next.id == mkvSeekHead {
			if err := m.parseSeekHead(next); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *mkvFile) parseInfo(el ebmlElement) error {
	return m.children(el, func(c ebmlElement) error {
		if c.id != mkvTimestampScale {
			return nil
		}
		v, err := m.uint(c)
		if err != nil {
			return err
		}
		if v == 0 {
			return noIndex("matroska: TimestampScale 0")
		}
		m.timestampScale = v
		return nil
	})
}

// parseTracks finds the first video track, the one ffmpeg numbers v:0.
func (m *mkvFile) parseTracks(el ebmlElement) error {
	return m.children(el, func(entry ebmlElement) error {
		if entry.id != mkvTrackEntry || m.videoTrack != 0 {
			return nil
		}
		var number, typ uint64
		err := m.children(entry, func(c ebmlElement) error {
			var err error
			switch c.id {
			case mkvTrackNumber:
				number, err = m.uint(c)
			case mkvTrackType:
				typ, err = m.uint(c)
			}
			return err
		})
		if err == nil && typ == mkvTrackTypeVideo && number != 0 {
			m.videoTrack = number
		}
		return err
	})
}

// parseCues returns the times of the cue points that name the video track.
func (m *mkvFile) parseCues(el ebmlElement) ([]float64, error) {
	var times []float64
	points := 0
	err := m.children(el, func(point ebmlElement) error {
		if point.id != mkvCuePoint {
			return nil
		}
		if points++; points > maxIndexEntries {
			return noIndex("matroska: more than %d cue points", maxIndexEntries)
		}
		var t uint64
		haveTime, video := false, false
		err := m.children(point, func(c ebmlElement) error {
			switch c.id {
			case mkvCueTime:
				v, err := m.uint(c)
				t, haveTime = v, true
				return err
			case mkvCueTrackPositions:
				return m.children(c, func(p ebmlElement) error {
					if p.id != mkvCueTrack {
						return nil
					}
					n, err := m.uint(p)
					if n == m.videoTrack {
						video = true
					}
					return err
				})
			}
			return nil
		})
		if err != nil {
			return err
		}
		if haveTime && video {
			times = append(times, m.seconds(t))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(times) == 0 {
		return nil, noIndex("matroska: the Cues name no keyframe of the video track")
	}
	return times, nil
}

// seconds converts ticks of TimestampScale nanoseconds, as ffmpeg does: its time base for the
// track is TimestampScale/1e9.
func (m *mkvFile) seconds(ticks uint64) float64 {
	if hi, lo := bits.Mul64(ticks, m.timestampScale); hi == 0 {
		return float64(lo/1e9) + float64(lo%1e9)/1e9 // exact for any time below 2^64 ns
	}
	return float64(ticks) * float64(m.timestampScale) / 1e9
}

// children calls fn for each child of el, in order. An element of unknown size ends at the next
// top-level element (or the Segment's end); its children must have known sizes.
func (m *mkvFile) children(el ebmlElement, fn func(ebmlElement) error) error {
	end := el.end(m.segEnd)
	for pos := el.data; pos < end; {
		c, err := m.header(pos, end)
		if err != nil {
			return err
		}
		if el.size < 0 && mkvTopLevel(c.id) {
			return nil
		}
		if c.size < 0 {
			return noIndex("matroska: element %#x at %d has an unknown size inside %#x", c.id, c.start, el.id)
		}
		if err := fn(c); err != nil {
			return err
		}
		pos = c.data + c.size
	}
	return nil
}

func mkvTopLevel(id uint32) bool {
	switch id {
	case mkvEBML, mkvSegment, mkvSeekHead, mkvInfo, mkvTracks, mkvCues, mkvCluster, mkvChapters, mkvTags, mkvAttachments:
		return true
	}
	return false
}

// header reads the ID and size of the element at pos, which must end by end.
func (m *mkvFile) header(pos, end int64) (ebmlElement, error) {
	b, err := m.src.read(pos, int(min(12, end-pos)))
	if err != nil {
		return ebmlElement{}, err
	}
	idLen, id, ok := vint(b, 4)
	if !ok {
		return ebmlElement{}, noIndex("matroska: no element ID at %d", pos)
	}
	// The ID keeps its length marker.
	id |= 1 << (7 * idLen)
	sizeLen, size, ok := vint(b[idLen:], 8)
	if !ok {
		return ebmlElement{}, noIndex("matroska: no element size at %d", pos)
	}
	el := ebmlElement{id: uint32(id), start: pos, data: pos + int64(idLen+sizeLen), size: int64(size)}
	if size == 1<<(7*sizeLen)-1 {
		el.size = -1 // all ones: unknown
	} else if size > uint64(end-el.data) {
		if el.id == mkvSegment {
			el.size = end - el.data // a file cut short keeps what it has
		} else {
			return ebmlElement{}, noIndex("matroska: element %#x at %d is %d bytes, past its parent's end at %d", el.id, pos, size, end)
		}
	}
	return el, nil
}

// vint reads an EBML variable-length integer of at most maxLen bytes, without its length marker.
func vint(b []byte, maxLen int) (n int, v uint64, ok bool) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0, false
	}
	n = bits.LeadingZeros8(b[0]) + 1
	if n > maxLen || n > len(b) {
		return 0, 0, false
	}
	v = uint64(b[0]) & (0xFF >> n)
	for _, x := range b[1:n] {
		v = v<<8 | uint64(x)
	}
	return n, v, true
}

func (m *mkvFile) payload(el ebmlElement, maxLen int64) ([]byte, error) {
	if el.size > maxLen {
		return nil, noIndex("matroska: element %#x at %d is %d bytes, more than %d", el.id, el.start, el.size, maxLen)
	}
	return m.src.read(el.data, int(el.size))
}

func (m *mkvFile) uint(el ebmlElement) (uint64, error) {
	b, err := m.payload(el, 8)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v, nil
}
