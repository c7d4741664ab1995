package media

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"testing"
)

// Matroska and MP4 files built element by element, for what ffmpeg does not write: other
// TimestampScales, elements of unknown size, cue points for several tracks, damaged indexes.

// ebml is an element with a known size (written in 8 bytes, so sizes never shift offsets).
func ebml(id uint32, payload ...[]byte) []byte {
	b := ebmlID(id)
	p := bytes.Join(payload, nil)
	b = append(b, 0x01)
	for i := 6; i >= 0; i-- {
		b = append(b, byte(len(p)>>(8*i)))
	}
	return append(b, p...)
}

// ebmlUnknown is an element of unknown size, as a live muxer writes it.
func ebmlUnknown(id uint32, payload ...[]byte) []byte {
	return append(append(ebmlID(id), 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF), bytes.Join(payload, nil)...)
}

func ebmlID(id uint32) []byte {
	var b []byte
	for shift := 24; shift >= 0; shift -= 8 {
		if x := byte(id >> shift); x != 0 || len(b) > 0 {
			b = append(b, x)
		}
	}
	return b
}

// ebmlUint is an unsigned integer element in 8 bytes.
func ebmlUint(id uint32, v uint64) []byte { return ebml(id, be64(v)) }

var ebmlHeader = ebml(mkvEBML, ebml(0x4282, []byte("matroska")))

func trackEntry(number, typ uint64) []byte {
	return ebml(mkvTrackEntry, ebmlUint(mkvTrackNumber, number), ebmlUint(mkvTrackType, typ), ebml(0x86, []byte("V_MPEG4/ISO/AVC")))
}

// cuePoint is a cue at time for the tracks.
func cuePoint(time uint64, tracks ...uint64) []byte {
	var pos [][]byte
	for _, tr := range tracks {
		pos = append(pos, ebml(mkvCueTrackPositions, ebmlUint(mkvCueTrack, tr), ebmlUint(0xF1, 1234)))
	}
	return ebml(mkvCuePoint, append([][]byte{ebmlUint(mkvCueTime, time)}, pos...)...)
}

// seekHead points at each element of children with an ID in ids, counting from the Segment's
// payload, which starts with this SeekHead and then children.
func seekHead(ids []uint32, children ...[]byte) []byte {
	build := func(offsets map[uint32]uint64) []byte {
		var seeks [][]byte
		for _, id := range ids {
			seeks = append(seeks, ebml(mkvSeek, ebml(mkvSeekID, ebmlID(id)), ebmlUint(mkvSeekPosition, offsets[id])))
		}
		return ebml(mkvSeekHead, seeks...)
	}
	// The SeekHead's size does not depend on the offsets: build it once to learn it.
	pos := uint64(len(build(nil)))
	offsets := map[uint32]uint64{}
	for _, c := range children {
		id := readID(c)
		if _, ok := offsets[id]; !ok {
			offsets[id] = pos
		}
		pos += uint64(len(c))
	}
	return build(offsets)
}

func readID(b []byte) uint32 {
	n, v, _ := vint(b, 4)
	return uint32(v | 1<<(7*n))
}

var (
	twoTracks   = ebml(mkvTracks, trackEntry(1, 2), trackEntry(2, 1), trackEntry(3, 1))
	cluster     = ebml(mkvCluster, ebmlUint(0xE7, 0), ebml(0xA3, make([]byte, 100)))
	multiCues   = ebml(mkvCues, cuePoint(0, 1, 2), cuePoint(0, 2), cuePoint(15000, 1), cuePoint(25000, 2, 3), cuePoint(40000, 3), cuePoint(52500, 1, 2))
	scaledInfo  = ebml(mkvInfo, ebmlUint(mkvTimestampScale, 100_000)) // a tenth of a millisecond
	segmentCues = func(info, tracks, cues []byte) []byte {
		return ebml(mkvSegment, seekHead([]uint32{mkvInfo, mkvTracks, mkvCues}, info, tracks, cluster, cues), info, tracks, cluster, cues)
	}
)

func TestKeyframesMatroskaBuilt(t *testing.T) {
	secondSeekHead := func() []byte {
		// The first SeekHead names only a second one, after the clusters, which names Cues.
		info, tracks := scaledInfo, twoTracks
		tail := ebml(mkvSeekHead, ebml(mkvSeek, ebml(mkvSeekID, ebmlID(mkvCues)), ebmlUint(mkvSeekPosition, 0)))
		first := seekHead([]uint32{mkvSeekHead}, info, tracks, cluster, multiCues, tail)
		cuesAt := uint64(len(first) + len(info) + len(tracks) + len(cluster))
		tail = ebml(mkvSeekHead, ebml(mkvSeek, ebml(mkvSeekID, ebmlID(mkvCues)), ebmlUint(mkvSeekPosition, cuesAt)))
		first = seekHead([]uint32{mkvSeekHead}, info, tracks, cluster, multiCues, tail)
		return ebml(mkvSegment, first, info, tracks, cluster, multiCues, tail)
	}()
	for _, tc := range []struct {
		name string
		file []byte
		want []float64
	}{
		// Track 2 is the first video track; cue points for track 1 (audio) and 3 are not its.
		{"cues at the end, 0.1 ms ticks", segmentCues(scaledInfo, twoTracks, multiCues), []float64{0, 2.5, 5.25}},
		{"default TimestampScale", segmentCues(ebml(mkvInfo), twoTracks, multiCues), []float64{0, 25, 52.5}},
		{"unknown sizes, cues before clusters, no SeekHead", ebmlUnknown(mkvSegment, scaledInfo, twoTracks,
			ebmlUnknown(mkvCues, cuePoint(0, 2), cuePoint(0, 2), cuePoint(300, 2)), ebmlUnknown(mkvCluster, ebmlUint(0xE7, 0))), []float64{0, 0.03}},
		{"a second SeekHead names the Cues", secondSeekHead, []float64{0, 2.5, 5.25}},
		{"a Void before the Segment", slices.Concat(ebml(0xEC, make([]byte, 10)), ebml(mkvSegment, scaledInfo, twoTracks, multiCues)), []float64{0, 2.5, 5.25}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := slices.Concat(ebmlHeader, tc.file)
			got, err := Keyframes(bytes.NewReader(file), int64(len(file)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := sameTimes(got, tc.want); diff != "" {
				t.Error(diff)
			}
		})
	}

	// The SeekHead says Cues follow Tracks, where a Cluster is.
	wrongSeek := ebml(mkvSegment, seekHead([]uint32{mkvCues}, twoTracks, multiCues), twoTracks, cluster, multiCues)
	for name, segment := range map[string][]byte{
		"no video track":          segmentCues(scaledInfo, ebml(mkvTracks, trackEntry(1, 2)), multiCues),
		"no cue for the video":    segmentCues(scaledInfo, twoTracks, ebml(mkvCues, cuePoint(0, 1))),
		"no Cues":                 ebml(mkvSegment, scaledInfo, twoTracks, cluster),
		"no Tracks":               segmentCues(scaledInfo, nil, multiCues),
		"TimestampScale 0":        segmentCues(ebml(mkvInfo, ebmlUint(mkvTimestampScale, 0)), twoTracks, multiCues),
		"SeekHead names no Cues":  wrongSeek,
		"cue point past its Cues": ebml(mkvSegment, twoTracks, ebml(mkvCues, cuePoint(0, 2))[:20]),
	} {
		file := slices.Concat(ebmlHeader, segment)
		if got, err := Keyframes(bytes.NewReader(file), int64(len(file))); !errors.Is(err, ErrNoIndex) {
			t.Errorf("%s: %v, %v; want ErrNoIndex", name, got, err)
		}
	}
}

// mp4 builds a box; containers take their children's bytes as payload.
func mp4(typ string, payload ...[]byte) []byte {
	p := bytes.Join(payload, nil)
	return append(append(be32b(uint32(8+len(p))), typ...), p...)
}

// fullBox is a payload of version 0 and flags 0 followed by 32-bit words.
func fullBox(words ...uint32) []byte {
	b := []byte{0, 0, 0, 0}
	for _, w := range words {
		b = append(b, be32b(w)...)
	}
	return b
}

// builtMP4 is a file whose video track (after an audio one) has 10 samples of 100 ticks at
// 1000 a second, keyframes 1 and 6 (1-based), and the given extra stbl boxes.
func builtMP4(stbl ...[]byte) []byte {
	mdhd := mp4("mdhd", fullBox(0, 0, 1000, 1000, 0))
	track := func(handler string, boxes ...[]byte) []byte {
		return mp4("trak", mp4("mdia", mdhd, mp4("hdlr", fullBox(0, be32([]byte(handler)), 0, 0, 0)),
			mp4("minf", mp4("hdlr", fullBox(0, be32([]byte("alis")), 0, 0, 0)), mp4("stbl", boxes...))))
	}
	table := append([][]byte{mp4("stts", fullBox(1, 10, 100)), mp4("stsz", fullBox(0, 10))}, stbl...)
	moov := mp4("moov", mp4("mvhd", fullBox(0, 0, 1000, 1000)),
		track("soun", mp4("stts", fullBox(1, 5, 1024)), mp4("stsz", fullBox(0, 5))),
		track("vide", table...))
	return slices.Concat(mp4("ftyp", []byte("isom\x00\x00\x02\x00isom")), mp4("mdat", make([]byte, 64)), moov)
}

func TestKeyframesMP4Built(t *testing.T) {
	stss := mp4("stss", fullBox(2, 1, 6))
	for _, tc := range []struct {
		name string
		file []byte
		want []float64
	}{
		{"stss", builtMP4(stss), []float64{0, 0.5}},
		{"no stss: every sample", builtMP4(), []float64{0, .1, .2, .3, .4, .5, .6, .7, .8, .9}},
		{"empty stss: the first sample", builtMP4(mp4("stss", fullBox(0))), []float64{0}},
		{"0-based stss", builtMP4(mp4("stss", fullBox(2, 0, 5))), []float64{0, 0.5}},
		{"ctts", builtMP4(stss, mp4("ctts", fullBox(2, 5, 200, 5, 50))), []float64{0.2, 0.55}},
		{"64-bit moov size", func() []byte {
			b := builtMP4(stss)
			at := bytes.Index(b, []byte("moov")) - 4
			return slices.Concat(b[:at], be32b(1), []byte("moov"), be64(uint64(len(b)-at+8)), b[at+8:])
		}(), []float64{0, 0.5}},
	} {
		got, err := Keyframes(bytes.NewReader(tc.file), int64(len(tc.file)))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if diff := sameTimes(got, tc.want); diff != "" {
			t.Errorf("%s: %s", tc.name, diff)
		}
	}

	for name, file := range map[string][]byte{
		"moof before moov":   slices.Concat(mp4("ftyp", []byte("isom")), mp4("moof"), builtMP4(stss)),
		"4 billion samples":  builtMP4(mp4("stsz", fullBox(0, math.MaxUint32))),
		"stss count too big": builtMP4(mp4("stss", fullBox(1<<30, 1))),
		"no moov":            slices.Concat(mp4("ftyp", []byte("isom")), mp4("mdat", make([]byte, 16))),
		"box past the end":   slices.Concat(mp4("ftyp", []byte("isom")), be32b(1000), []byte("moov")),
		"tiny box size":      slices.Concat(mp4("ftyp", []byte("isom")), be32b(3), []byte("moov")),
		"huge 64-bit size":   slices.Concat(mp4("ftyp", []byte("isom")), be32b(1), []byte("moov"), be64(math.MaxUint64)),
	} {
		if got, err := Keyframes(bytes.NewReader(file), int64(len(file))); !errors.Is(err, ErrNoIndex) {
			t.Errorf("%s: %v, %v; want ErrNoIndex", name, got, err)
		}
	}
	withMvex := builtMP4(stss)
	at := bytes.Index(withMvex, []byte("moov")) - 4
	withMvex = slices.Concat(withMvex[:at], mp4("moov", withMvex[at+8:], mp4("mvex", mp4("trex", fullBox(1, 1, 0, 0, 0)))))
	if _, err := Keyframes(bytes.NewReader(withMvex), int64(len(withMvex))); !errors.Is(err, ErrNoIndex) {
		t.Errorf("moov with mvex: %v, want ErrNoIndex", err)
	}
}

// FuzzKeyframes feeds Keyframes damaged files: it must return an error or ascending times,
// never panic or allocate what a file's counts ask for.
func FuzzKeyframes(f *testing.F) {
	f.Add(slices.Concat(ebmlHeader, segmentCues(scaledInfo, twoTracks, multiCues)))
	f.Add(slices.Concat(ebmlHeader, ebmlUnknown(mkvSegment, scaledInfo, twoTracks, ebmlUnknown(mkvCues, cuePoint(0, 2), cuePoint(300, 2)))))
	f.Add(builtMP4(mp4("stss", fullBox(2, 1, 6)), mp4("ctts", fullBox(2, 5, 200, 5, 50))))
	f.Add(builtMP4(mp4("stss", fullBox(2, 1, 6)), mp4("ctts", fullBox(2, 5, 200, 5, 0xFFFFFF00))))
	f.Fuzz(func(t *testing.T, data []byte) {
		times, err := Keyframes(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrNoIndex) {
				t.Fatalf("a read of the file itself failed: %v", err)
			}
			return
		}
		if len(times) == 0 || !slices.IsSorted(times) {
			t.Fatalf("times %v", times)
		}
		for i, v := range times {
			if math.IsNaN(v) || (i > 0 && v == times[i-1]) {
				t.Fatalf("times %v", times)
			}
		}
	})
}
