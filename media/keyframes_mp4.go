package media

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
)

// MP4 and QuickTime keep their index in the moov box, at the start (faststart) or after the
// media: each track's sample table gives every sample's decode time (stts), the offset to its
// presentation time (ctts) and which samples are keyframes (stss). The edit list (elst) then
// maps the track's media time onto the presentation; ffmpeg's reading of it, which this copies
// (libavformat/mov.c, mov_fix_index), decides where ffmpeg's timestamps start.

// mp4FirstBoxes are the box types a file may start with.
var mp4FirstBoxes = map[string]bool{"ftyp": true, "moov": true, "mdat": true, "free": true, "skip": true, "wide": true}

// mp4MaxTopLevel bounds the boxes walked looking for moov; mp4MaxEdits the edit list's entries.
const (
	mp4MaxTopLevel = 1024
	mp4MaxEdits    = 4096
)

func isMP4(head []byte) bool {
	if len(head) < 8 {
		return false
	}
	size := binary.BigEndian.Uint32(head)
	return mp4FirstBoxes[string(head[4:8])] && (size == 0 || size == 1 || size >= 8)
}

type mp4Box struct {
	typ       string
	start     int64
	data, end int64
}

type mp4File struct {
	src            *indexReader
	movieTimescale uint32
	fragmented     bool
	video          *mp4Track
}

// mp4Track is what the keyframe times are made of, as the boxes hold it.
type mp4Track struct {
	timescale   uint32
	handler     string
	stts        []mp4Run // sample counts and durations
	ctts        []mp4Run // sample counts and composition offsets
	stss, stps  []uint32
	hasStss     bool
	sampleCount int64 // from stsz or stz2; -1 when absent
	edits       []mp4Edit
	hasElst     bool
}

type mp4Run struct {
	count uint32
	value int32
}

type mp4Edit struct {
	duration  int64 // in the movie's timescale
	mediaTime int64 // in the track's, -1 for an empty edit
}

func mp4Keyframes(src *indexReader) ([]float64, error) {
	f := &mp4File{src: src}
	moov, err := f.findMoov()
	if err != nil {
		return nil, err
	}
	err = f.children(moov, func(b mp4Box) error {
		switch b.typ {
		case "mvhd":
			p, err := f.payload(b, 32)
			if err != nil {
				return err
			}
			at := 12 // version and flags, creation and modification times
			if p[0] == 1 {
				at = 20
			}
			if len(p) < at+4 {
				return noIndex("mp4: mvhd too short")
			}
			f.movieTimescale = binary.BigEndian.Uint32(p[at:])
		case "mvex":
			f.fragmented = true
		case "trak":
			if f.video != nil {
				return nil
			}
			t, err := f.parseTrak(b)
			if err != nil {
				return err
			}
			if t.handler == "vide" {
				f.video = t
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if f.fragmented {
		return nil, noIndex("mp4: fragmented (moof): the sample tables do not list every sample")
	}
	if f.video == nil {
		return nil, noIndex("mp4: no video track")
	}
	return f.video.keyframes(f.movieTimescale, src.size)
}

// findMoov walks the top-level boxes to moov.
func (f *mp4File) findMoov() (mp4Box, error) {
	pos := int64(0)
	for range mp4MaxTopLevel {
		if pos >= f.src.size {
			break
		}
		b, err := f.box(pos, f.src.size)
		if err != nil {
			return mp4Box{}, err
		}
		switch b.typ {
		case "moov":
			return b, nil
		case "moof":
			return mp4Box{}, noIndex("mp4: fragmented (moof before moov)")
		}
		pos = b.end
	}
	return mp4Box{}, noIndex("mp4: no moov box")
}

func (f *mp4File) parseTrak(trak mp4Box) (*mp4Track, error) {
	t := &mp4Track{sampleCount: -1}
	if err := f.children(trak, func(b mp4Box) error { return f.trakBox(t, trak, b) }); err != nil {
		return nil, err
	}
	return t, nil
}

// mp4Parents are the containers on the way to a track's tables, and where each belongs.
var mp4Parents = map[string]string{"mdia": "trak", "edts": "trak", "minf": "mdia", "stbl": "minf"}

// trakBox reads b, a box inside trak, and the boxes inside it that matter.
func (f *mp4File) trakBox(t *mp4Track, parent, b mp4Box) error {
	switch b.typ {
	case "mdia", "minf", "stbl", "edts":
		if mp4Parents[b.typ] != parent.typ {
			return nil // out of place: only a file made to exhaust the stack nests them deeper
		}
		return f.children(b, func(c mp4Box) error { return f.trakBox(t, b, c) })
	case "hdlr":
		if parent.typ != "mdia" {
			return nil // QuickTime's data handler in minf: not the media type
		}
		p, err := f.payload(b, 12)
		if err != nil {
			return err
		}
		if len(p) >= 12 {
			t.handler = string(p[8:12])
		}
	case "mdhd":
		p, err := f.payload(b, 32)
		if err != nil {
			return err
		}
		at := 12
		if len(p) > 0 && p[0] == 1 {
			at = 20
		}
		if len(p) < at+4 {
			return noIndex("mp4: mdhd too short")
		}
		t.timescale = binary.BigEndian.Uint32(p[at:])
	}
	if t.handler != "" && t.handler != "vide" {
		return nil // not the track wanted: its tables need no reading
	}
	var err error
	switch b.typ {
	case "stts":
		t.stts, err = f.runs(b)
	case "ctts":
		t.ctts, err = f.runs(b)
	case "stss":
		t.hasStss = true
		t.stss, err = f.numbers(b)
	case "stps":
		t.stps, err = f.numbers(b)
	case "stsz", "stz2":
		var p []byte
		if p, err = f.payload(b, 12); err == nil {
			if len(p) < 12 {
				return noIndex("mp4: %s too short", b.typ)
			}
			t.sampleCount = int64(binary.BigEndian.Uint32(p[8:]))
		}
	case "elst":
		t.hasElst = true
		t.edits, err = f.edits(b)
	}
	return err
}

// entries reads a full box's entry count and checks that its entries of entrySize bytes fit.
func (f *mp4File) entries(b mp4Box, entrySize int64) (p []byte, version byte, n int, err error) {
	if b.end-b.data < 8 {
		return nil, 0, 0, noIndex("mp4: %s too short", b.typ)
	}
	if b.end-b.data > 8+maxIndexEntries*entrySize {
		return nil, 0, 0, noIndex("mp4: %s of %d bytes holds more than %d entries", b.typ, b.end-b.data, maxIndexEntries)
	}
	p, err = f.src.read(b.data, int(b.end-b.data))
	if err != nil {
		return nil, 0, 0, err
	}
	count := int64(binary.BigEndian.Uint32(p[4:]))
	if count > int64(len(p)-8)/entrySize {
		return nil, 0, 0, noIndex("mp4: %s says %d entries, has room for %d", b.typ, count, int64(len(p)-8)/entrySize)
	}
	return p[8:], p[0], int(count), nil
}

// runs reads stts or ctts: (count, value) pairs. ffmpeg reads both ctts versions as signed.
func (f *mp4File) runs(b mp4Box) ([]mp4Run, error) {
	p, _, n, err := f.entries(b, 8)
	if err != nil {
		return nil, err
	}
	runs := make([]mp4Run, n)
	for i := range runs {
		runs[i] = mp4Run{binary.BigEndian.Uint32(p[8*i:]), int32(binary.BigEndian.Uint32(p[8*i+4:]))}
	}
	return runs, nil
}

func (f *mp4File) numbers(b mp4Box) ([]uint32, error) {
	p, _, n, err := f.entries(b, 4)
	if err != nil {
		return nil, err
	}
	nums := make([]uint32, n)
	for i := range nums {
		nums[i] = binary.BigEndian.Uint32(p[4*i:])
	}
	return nums, nil
}

func (f *mp4File) edits(b mp4Box) ([]mp4Edit, error) {
	if b.end-b.data < 8 {
		return nil, noIndex("mp4: elst too short")
	}
	p, err := f.src.read(b.data, int(min(b.end-b.data, 8+mp4MaxEdits*20)))
	if err != nil {
		return nil, err
	}
	size := 12
	if p[0] == 1 {
		size = 20
	}
	// Like ffmpeg, trust the box's size over its count.
	n := min((len(p)-8)/size, mp4MaxEdits)
	edits := make([]mp4Edit, n)
	for i := range edits {
		e := p[8+size*i:]
		if size == 20 {
			edits[i] = mp4Edit{int64(binary.BigEndian.Uint64(e)), int64(binary.BigEndian.Uint64(e[8:]))}
		} else {
			edits[i] = mp4Edit{int64(binary.BigEndian.Uint32(e)), int64(int32(binary.BigEndian.Uint32(e[4:])))}
		}
	}
	return edits, nil
}

// mp4Sample is one entry of ffmpeg's index of the track.
type mp4Sample struct {
	dts     int64
	ctts    int32
	hasCtts bool
	key     bool
}

// keyframes lays out the track's samples as ffmpeg's mov_build_index does, applies the edit list
// as mov_fix_index does, and returns the keyframes' presentation times.
func (t *mp4Track) keyframes(movieTimescale uint32, fileSize int64) ([]float64, error) {
	if t.sampleCount < 0 {
		return nil, noIndex("mp4: the video track has no sample size table")
	}
	if len(t.stts) == 0 || t.sampleCount == 0 {
		return nil, noIndex("mp4: the video track lists no samples")
	}
	// Every sample takes a byte of the file at least.
	if n := t.sampleCount; n > maxIndexEntries || n > fileSize {
		return nil, noIndex("mp4: %d samples in a file of %d bytes", n, fileSize)
	}
	timescale := int64(t.timescale)
	if timescale == 0 {
		timescale = int64(movieTimescale)
	}
	if timescale == 0 {
		timescale = 1
	}
	samples, dtsShift := t.samples()
	entries := samples
	if t.hasElst && len(t.edits) > 0 {
		var err error
		if entries, err = fixIndex(samples, t.edits, dtsShift, timescale, int64(movieTimescale), samples[0].hasCtts); err != nil {
			return nil, err
		}
	}
	var times []float64
	for _, e := range entries {
		if !e.key {
			continue
		}
		pts := e.dts
		if e.hasCtts {
			pts += dtsShift + int64(e.ctts)
		}
		times = append(times, float64(pts)/float64(timescale))
	}
	return times, nil
}

// samples builds the per-sample index, as mov_build_index does, and the shift ffmpeg applies to
// decode times so that negative composition offsets (ctts version 1) give no pts below dts.
func (t *mp4Track) samples() ([]mp4Sample, int64) {
	n := int(t.sampleCount)
	samples := make([]mp4Sample, n)

	// ctts: ffmpeg skips runs of count <= 0, takes the shift from all but the last two runs,
	// and drops the table when an offset is absurd.
	var dtsShift int64
	i := 0
	for r, run := range t.ctts {
		if int32(run.count) <= 0 {
			continue
		}
		if r+2 < len(t.ctts) {
			if run.value < -(1<<28) || run.value > 1<<28 {
				for j := range samples {
					samples[j].hasCtts = false
				}
				break
			}
			if run.value < 0 {
				dtsShift = max(dtsShift, -int64(run.value))
			}
		}
		for c := uint32(0); c < run.count && i < n; c++ {
			samples[i].ctts, samples[i].hasCtts = run.value, true
			i++
		}
	}

	keyOff := uint32(0)
	if (len(t.stss) > 0 && t.stss[0] > 0) || (len(t.stps) > 0 && t.stps[0] > 0) {
		keyOff = 1
	}
	keyAbsent := t.hasStss && len(t.stss) == 0
	dts := -dtsShift
	sttsIndex, sttsSample, stssIndex, stpsIndex := 0, uint32(0), 0, 0
	for i := range samples {
		s := &samples[i]
		s.dts = dts
		num := uint32(i) + keyOff
		if !keyAbsent && (len(t.stss) == 0 || num == t.stss[stssIndex]) {
			s.key = true
			if stssIndex+1 < len(t.stss) {
				stssIndex++
			}
		} else if len(t.stps) > 0 && num == t.stps[stpsIndex] {
			s.key = true
			if stpsIndex+1 < len(t.stps) {
				stpsIndex++
			}
		}
		if keyAbsent && len(t.stps) == 0 && i == 0 {
			s.key = true
		}
		delta := int64(t.stts[sttsIndex].value)
		if delta < 0 {
			delta = 1 // negative durations are invalid; ffmpeg takes 1
		}
		dts += delta
		sttsSample++
		if sttsIndex+1 < len(t.stts) && sttsSample == t.stts[sttsIndex].count {
			sttsSample = 0
			sttsIndex++
		}
	}
	return samples, dtsShift
}

// fixIndex rebuilds the index along the edit list as ffmpeg's mov_fix_index does: each edit
// takes the samples whose presentation time falls in it (starting from the keyframe before,
// which is decoded but dropped), retimed from the edit's start on the presentation timeline;
// then all is shifted so that the first presented frame is at 0 (or at the end of the empty
// edits before it). Samples outside every edit are dropped.
func fixIndex(samples []mp4Sample, edits []mp4Edit, dtsShift, timescale, movieTimescale int64, hasCtts bool) ([]mp4Sample, error) {
	if movieTimescale == 0 {
		return nil, noIndex("mp4: an edit list with a movie timescale of 0")
	}
	var out []mp4Sample
	entryEnd := -dtsShift
	var emptySum int64
	minCorrected := int64(-1)
	foundNonEmpty := false
	for _, e := range edits {
		mediaTime := e.mediaTime
		duration, ok := rescale(e.duration, timescale, movieTimescale)
		if !ok {
			return nil, noIndex("mp4: edit duration %d out of range", e.duration)
		}
		if mediaTime > 0 && duration > math.MaxInt64-mediaTime {
			duration = 0
		}
		counter := entryEnd
		entryEnd += duration
		if !foundNonEmpty && mediaTime == -1 {
			emptySum += duration
			continue
		}
		foundNonEmpty = true

		index := findPrevKeyframe(samples, mediaTime, dtsShift, hasCtts, false)
		if index < 0 {
			index = findPrevKeyframe(samples, mediaTime, dtsShift, hasCtts, true)
		}
		index = max(index, 0)
		started, keyAfterEdit := false, false
		for ; index < len(samples); index++ {
			s := samples[index]
			frameDuration := duration
			if index+1 < len(samples) {
				frameDuration = samples[index+1].dts - s.dts
			}
			cts := s.dts + dtsShift
			var ctts int64
			if s.hasCtts {
				ctts = int64(s.ctts)
				cts += ctts
			}
			entry := s
			if cts < mediaTime || cts-mediaTime >= duration {
				entry.key = false // decoded for what follows, then dropped: never shown
			} else {
				if v := counter + ctts + dtsShift; minCorrected < 0 || v < minCorrected {
					minCorrected = v
				}
				started = true
			}
			entry.dts = counter
			if len(out) >= maxIndexEntries {
				return nil, noIndex("mp4: the edit list makes more than %d samples", maxIndexEntries)
			}
			out = append(out, entry)
			if started {
				counter += frameDuration
			}
			// Stop at the first keyframe past the edit's end, or with B-frames the second.
			if cts+frameDuration-mediaTime >= duration && s.key {
				if hasCtts && !keyAfterEdit {
					keyAfterEdit = true
					continue
				}
				break
			}
		}
	}
	minCorrected -= emptySum
	if minCorrected > 0 {
		for i := range out {
			out[i].dts -= minCorrected
		}
	}
	return out, nil
}

// findPrevKeyframe is ffmpeg's find_prev_closest_index: the last keyframe whose decode time, and
// presentation time when there are composition offsets, is at or before mediaTime; -1 if none.
// With anyFrame, any frame will do for the decode time search.
func findPrevKeyframe(samples []mp4Sample, mediaTime, dtsShift int64, hasCtts, anyFrame bool) int {
	want := mediaTime
	if dtsShift > 0 {
		want -= dtsShift
	}
	// av_index_search_timestamp, backward.
	a, b := -1, len(samples)
	if b > 0 && samples[b-1].dts < want {
		a = b - 1
	}
	for b-a > 1 {
		m := (a + b) / 2
		if samples[m].dts >= want {
			b = m
		}
		if samples[m].dts <= want {
			a = m
		}
	}
	index := a
	if !anyFrame {
		for index >= 0 && !samples[index].key {
			index--
		}
	}
	if index < 0 {
		return -1
	}
	for i := index; i > 0 && samples[i].dts == samples[i-1].dts; i-- {
		if anyFrame || samples[i-1].key {
			index = i - 1
		}
	}
	if hasCtts {
		for index >= 0 && samples[index].hasCtts {
			if s := samples[index]; s.dts+int64(s.ctts) <= want && s.key {
				break
			}
			index--
		}
	}
	return index
}

// rescale is av_rescale: a*b/c rounded to nearest, ties away from zero; ok is false on overflow.
func rescale(a, b, c int64) (int64, bool) {
	if b <= 0 || c <= 0 {
		return 0, false
	}
	neg := a < 0
	ua := uint64(a)
	if neg {
		ua = uint64(-a)
	}
	hi, lo := bits.Mul64(ua, uint64(b))
	lo, carry := bits.Add64(lo, uint64(c)/2, 0)
	hi += carry
	if hi >= uint64(c) {
		return 0, false
	}
	q, _ := bits.Div64(hi, lo, uint64(c))
	if q > math.MaxInt64 {
		return 0, false
	}
	if neg {
		return -int64(q), true
	}
	return int64(q), true
}

// children calls fn for each box inside b.
func (f *mp4File) children(b mp4Box, fn func(mp4Box) error) error {
	for pos := b.data; pos < b.end; {
		if b.end-pos < 8 {
			return nil // padding
		}
		c, err := f.box(pos, b.end)
		if err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
		pos = c.end
	}
	return nil
}

// box reads the header of the box at pos, which must end by end.
func (f *mp4File) box(pos, end int64) (mp4Box, error) {
	h, err := f.src.read(pos, int(min(16, end-pos)))
	if err != nil {
		return mp4Box{}, err
	}
	if len(h) < 8 {
		return mp4Box{}, noIndex("mp4: a box header at %d is cut short", pos)
	}
	b := mp4Box{typ: string(h[4:8]), start: pos, data: pos + 8}
	switch size := uint64(binary.BigEndian.Uint32(h)); size {
	case 0: // to the end of the file (or of the parent)
		b.end = end
	case 1: // a 64-bit size follows the type
		if len(h) < 16 {
			return mp4Box{}, noIndex("mp4: box %q at %d has a 64-bit size cut short", b.typ, pos)
		}
		large := binary.BigEndian.Uint64(h[8:])
		if large < 16 || large > uint64(end-pos) {
			return mp4Box{}, noIndex("mp4: box %q at %d is %d bytes, past its parent's end at %d", b.typ, pos, large, end)
		}
		b.data, b.end = pos+16, pos+int64(large)
	default:
		if size < 8 || size > uint64(end-pos) {
			return mp4Box{}, noIndex("mp4: box %q at %d is %d bytes, past its parent's end at %d", b.typ, pos, size, end)
		}
		b.end = pos + int64(size)
	}
	if b.typ == "uuid" {
		b.data += 16
		if b.data > b.end {
			return mp4Box{}, noIndex("mp4: uuid box at %d is cut short", pos)
		}
	}
	return b, nil
}

// payload reads up to maxLen bytes of a small box's payload.
func (f *mp4File) payload(b mp4Box, maxLen int64) ([]byte, error) {
	p, err := f.src.read(b.data, int(min(b.end-b.data, maxLen)))
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, noIndex("mp4: empty %s box", b.typ)
	}
	return slices.Clone(p), nil
}
