package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// ffprobeKeyframes is what the gateway's times must match: ffprobe's pts_time of each keyframe
// of the first video track, as decoded. The frames are filtered on key_frame too: some decoders
// (VP9's) ignore -skip_frame.
func ffprobeKeyframes(t *testing.T, path string) []float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-select_streams", "v:0", "-skip_frame", "nokey",
		"-show_entries", "frame=pts_time,key_frame", "-of", "compact=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var times []float64
	for _, line := range strings.Fields(string(out)) {
		fields := map[string]string{}
		for _, kv := range strings.Split(line, "|") {
			k, v, _ := strings.Cut(kv, "=")
			fields[k] = v
		}
		field, ok := fields["pts_time"]
		if !ok || fields["key_frame"] != "1" {
			continue
		}
		v, err := strconv.ParseFloat(field, 64)
		if err != nil {
			t.Fatalf("ffprobe %s: pts_time %q: %v", path, field, err)
		}
		times = append(times, v)
	}
	return times
}

// countingReader counts the bytes and reads asked of a file.
type countingReader struct {
	f            *os.File
	bytes, reads atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.bytes.Add(int64(len(p)))
	c.reads.Add(1)
	return c.f.ReadAt(p, off)
}

func keyframesOfFile(t *testing.T, path string) ([]float64, *countingReader, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	cr := &countingReader{f: f}
	times, err := Keyframes(cr, st.Size())
	return times, cr, err
}

// sameTimes says how got differs from want (ffprobe's), each within a millisecond; "" if not.
func sameTimes(got, want []float64) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d keyframes, ffprobe has %d:\n got %v\nwant %v", len(got), len(want), head(got), head(want))
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 0.001 {
			return fmt.Sprintf("keyframe %d at %.6f, ffprobe says %.6f:\n got %v\nwant %v", i, got[i], want[i], head(got), head(want))
		}
	}
	return ""
}

func head(v []float64) []float64 { return v[:min(len(v), 12)] }

func TestKeyframesMatchFFprobe(t *testing.T) {
	need(t, "ffmpeg")
	need(t, "ffprobe")
	dir := t.TempDir()
	video := []string{"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25"}
	// Scene cuts at 2.3, 3.4 and 5.1 s: x264 puts keyframes at the last two (the first is too
	// close to the one -g puts at 2 s), and counts its -g interval from there.
	cuts := []string{"-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=2.3[a];smptebars=s=160x120:r=25:d=1.1[b];" +
		"mandelbrot=s=160x120:r=25[m];[m]trim=duration=1.7[c];testsrc=s=160x120:r=25:d=3.3[d];[a][b][c][d]concat=n=4[out0]"}
	withAudio := append(append([]string{}, video...), "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000")
	mk := func(name string, args ...string) string { return makeMedia(t, dir, name, args...) }

	x264 := []string{"-c:v", "libx264", "-g", "50"} // default preset: B-frames, so ctts and an edit list
	files := []string{
		mk("h264-bframes.mp4", append(append(append([]string{}, video...), "-t", "6"), x264...)...),
		mk("h264-faststart.mp4", append(append(append([]string{}, video...), "-t", "6", "-movflags", "+faststart"), x264...)...),
		mk("h264-aac.mp4", append(append(append([]string{}, withAudio...), "-t", "5", "-c:a", "aac"), x264...)...),
		mk("h264-g2s-scenecut.mp4", append(append([]string{}, cuts...), "-c:v", "libx264", "-g", "50")...),
		mk("h264-intra.mp4", append(append([]string{}, video...), "-t", "1", "-c:v", "libx264", "-g", "1")...), // no stss
		mk("h264-negative-cts.mp4", append(append(append([]string{}, video...), "-t", "4", "-movflags", "+negative_cts_offsets"), x264...)...),
		mk("h264-offset.mp4", append(append([]string{"-itsoffset", "0.5"}, withAudio...), "-t", "4", "-map", "0:v", "-map", "1:a",
			"-c:a", "aac", "-c:v", "libx264", "-g", "25")...), // an empty edit before the video
		mk("h264-ac3.mkv", append(append(append([]string{}, withAudio...), "-t", "6", "-c:a", "ac3"), x264...)...),
		mk("h264-cues-front.mkv", append(append(append([]string{}, withAudio...), "-t", "6", "-c:a", "ac3", "-reserve_index_space", "4096"), x264...)...),
		mk("hevc.mkv", append(append([]string{}, video...), "-t", "2", "-c:v", "libx265", "-preset", "ultrafast",
			"-x265-params", "log-level=error:keyint=12")...),
		mk("vp9-opus.webm", append(append([]string{}, withAudio...), "-t", "5", "-c:v", "libvpx-vp9", "-g", "30",
			"-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus")...),
	}
	files = append(files, widen(t, files[0]))

	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			want := ffprobeKeyframes(t, path)
			got, cr, err := keyframesOfFile(t, path)
			if err != nil {
				t.Fatalf("Keyframes: %v", err)
			}
			if diff := sameTimes(got, want); diff != "" {
				t.Error(diff)
			}
			t.Logf("%d keyframes from %d bytes in %d reads", len(got), cr.bytes.Load(), cr.reads.Load())
		})
	}
}

// widen rewrites an MP4 (made without faststart: ftyp, free, mdat, moov) with 64-bit box sizes,
// as ffmpeg writes files over 4 GB: mdat takes the 8 bytes of the empty free box before it for
// its large size, so no sample moves; moov, the last box, gets one too.
func widen(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	free := bytes.Index(b, []byte("free"))
	mdat := bytes.Index(b, []byte("mdat"))
	moov := bytes.LastIndex(b, []byte("moov"))
	if free < 4 || be32(b[free-4:]) != 8 || mdat != free+8 || moov < mdat || be32(b[moov-4:]) != uint32(len(b)-moov+4) {
		t.Fatalf("%s: not laid out as ftyp, free, mdat, moov (free at %d, mdat at %d, moov at %d)", path, free, mdat, moov)
	}
	var out bytes.Buffer
	out.Write(b[:free-4])
	mdatSize := uint64(be32(b[mdat-4:])) + 8
	out.Write([]byte{0, 0, 0, 1, 'm', 'd', 'a', 't'})
	out.Write(be64(mdatSize))
	out.Write(b[mdat+4 : moov-4])
	out.Write([]byte{0, 0, 0, 1, 'm', 'o', 'o', 'v'})
	out.Write(be64(uint64(len(b)-moov+4) + 8))
	out.Write(b[moov+4:])
	wider := strings.TrimSuffix(path, ".mp4") + "-64bit.mp4"
	if err := os.WriteFile(wider, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return wider
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func be64(v uint64) []byte {
	return []byte{byte(v >> 56), byte(v >> 48), byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

func TestKeyframesNoIndex(t *testing.T) {
	need(t, "ffmpeg")
	dir := t.TempDir()
	input := []string{"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", "1"}
	for _, tc := range []struct {
		name, why string
		args      []string
	}{
		{"xvid.avi", "AVI's idx1 is not read", append(input, "-c:v", "mpeg4")},
		{"h264.ts", "MPEG-TS has no index", append(input, "-c:v", "libx264")},
		{"fragmented.mp4", "fragments", append(input, "-c:v", "libx264", "-movflags", "+frag_keyframe+empty_moov")},
		{"audio.mp4", "no video track", []string{"-f", "lavfi", "-i", "sine", "-t", "1", "-c:a", "aac"}},
	} {
		path := makeMedia(t, dir, tc.name, tc.args...)
		if _, _, err := keyframesOfFile(t, path); !errors.Is(err, ErrNoIndex) {
			t.Errorf("%s (%s): %v, want ErrNoIndex", tc.name, tc.why, err)
		}
	}

	// ffmpeg writes Matroska to a pipe without Cues: it cannot go back to point the SeekHead at them.
	piped := filepath.Join(dir, "piped.mkv")
	f, err := os.Create(piped)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ffmpeg", append(append([]string{"-v", "error"}, input...), "-c:v", "libx264", "-f", "matroska", "pipe:1")...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = f, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg to a pipe: %v: %s", err, stderr.Bytes())
	}
	f.Close()
	if _, _, err := keyframesOfFile(t, piped); !errors.Is(err, ErrNoIndex) {
		t.Errorf("Matroska without Cues: %v, want ErrNoIndex", err)
	}

	for name, data := range map[string][]byte{"empty": nil, "text": []byte("not a video at all"), "EBML magic only": ebmlMagic} {
		if _, err := Keyframes(bytes.NewReader(data), int64(len(data))); !errors.Is(err, ErrNoIndex) {
			t.Errorf("%s: %v, want ErrNoIndex", name, err)
		}
	}
}

// TestKeyframesEditLists rewrites the edit list of real files (moov after mdat, so no sample
// moves) into what other muxers write, and checks the times against ffprobe's reading of them.
func TestKeyframesEditLists(t *testing.T) {
	need(t, "ffmpeg")
	need(t, "ffprobe")
	dir := t.TempDir()
	video := []string{"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", "8", "-c:v", "libx264", "-g", "50"}
	bframes := makeMedia(t, dir, "bframes.mp4", video...)
	negative := makeMedia(t, dir, "negative-cts.mp4", append(video, "-movflags", "+negative_cts_offsets")...)
	// Both have a timescale of 12800 (512 a frame) and one edit: (8000 ms, 1024) and (8000 ms, 0).
	for _, tc := range []struct {
		name  string
		src   string
		edits [][2]int64 // duration in ms, media time in 1/12800 s
	}{
		{"empty edit first", bframes, [][2]int64{{500, -1}, {8000, 1024}}},
		{"two empty edits", bframes, [][2]int64{{300, -1}, {200, -1}, {8000, 1024}}},
		{"starts between keyframes", bframes, [][2]int64{{5000, 1024 + 3*12800}}},
		{"two pieces", bframes, [][2]int64{{2000, 1024}, {3000, 1024 + 4*12800}}},
		{"cut end", bframes, [][2]int64{{4100, 1024}}},
		{"negative offsets, shifted start", negative, [][2]int64{{6000, 2 * 12800}}},
		{"negative offsets, empty edit", negative, [][2]int64{{1000, -1}, {8000, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".mp4")
			rewriteMoov(t, tc.src, path, func(moov *testBox) {
				elst := moov.find("trak", "edts", "elst")
				if elst == nil {
					t.Fatal("no elst")
				}
				elst.data = elstPayload(tc.edits)
			})
			want := ffprobeKeyframes(t, path)
			got, _, err := keyframesOfFile(t, path)
			if err != nil {
				t.Fatalf("Keyframes: %v", err)
			}
			if diff := sameTimes(got, want); diff != "" {
				t.Error(diff)
			}
			t.Logf("keyframes %v", got)
		})
	}
}

// testBox is an MP4 box as tests rewrite it: containers hold boxes, others bytes.
type testBox struct {
	typ  string
	data []byte
	kids []*testBox
}

var testContainers = map[string]bool{"moov": true, "trak": true, "mdia": true, "minf": true, "stbl": true, "edts": true}

func parseTestBoxes(t *testing.T, b []byte) []*testBox {
	t.Helper()
	var boxes []*testBox
	for len(b) > 0 {
		size := int(be32(b))
		if size < 8 || size > len(b) {
			t.Fatalf("box of %d bytes in %d", size, len(b))
		}
		x := &testBox{typ: string(b[4:8])}
		if testContainers[x.typ] {
			x.kids = parseTestBoxes(t, b[8:size])
		} else {
			x.data = b[8:size]
		}
		boxes = append(boxes, x)
		b = b[size:]
	}
	return boxes
}

func (x *testBox) bytes() []byte {
	payload := x.data
	if testContainers[x.typ] {
		payload = nil
		for _, k := range x.kids {
			payload = append(payload, k.bytes()...)
		}
	}
	return append(append(be32b(uint32(8+len(payload))), x.typ...), payload...)
}

// find follows path from x, taking the first box of each type.
func (x *testBox) find(path ...string) *testBox {
	for _, typ := range path {
		var next *testBox
		for _, k := range x.kids {
			if k.typ == typ {
				next = k
				break
			}
		}
		if next == nil {
			return nil
		}
		x = next
	}
	return x
}

// rewriteMoov copies src to dst with its moov, the last box, edited.
func rewriteMoov(t *testing.T, src, dst string, edit func(*testBox)) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.LastIndex(b, []byte("moov")) - 4
	if at < 0 || int(be32(b[at:])) != len(b)-at {
		t.Fatalf("%s: moov is not the last box", src)
	}
	moov := parseTestBoxes(t, b[at:])[0]
	edit(moov)
	if err := os.WriteFile(dst, append(b[:at:at], moov.bytes()...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// elstPayload is an elst box's payload, version 0, rate 1.
func elstPayload(edits [][2]int64) []byte {
	p := append([]byte{0, 0, 0, 0}, be32b(uint32(len(edits)))...)
	for _, e := range edits {
		p = append(append(append(p, be32b(uint32(e[0]))...), be32b(uint32(int32(e[1])))...), 0, 1, 0, 0)
	}
	return p
}

func be32b(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// TestKeyframesReadsOnlyTheIndex: a 20 MB file is indexed from a small part of it, so that a
// torrent still downloading gives its keyframes once the pieces holding the index are in.
func TestKeyframesReadsOnlyTheIndex(t *testing.T) {
	need(t, "ffmpeg")
	need(t, "ffprobe")
	dir := t.TempDir()
	// Ten minutes of 64×64 noise at 260 kbit/s: about 20 MB, 15000 frames, a keyframe every 2 s.
	mp4 := makeMedia(t, dir, "long.mp4", "-f", "lavfi", "-i", "testsrc2=s=64x64:r=25,noise=alls=30:allf=t", "-t", "600",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-b:v", "260k")
	files := []string{
		mp4,
		makeMedia(t, dir, "long-faststart.mp4", "-i", mp4, "-c", "copy", "-movflags", "+faststart"),
		makeMedia(t, dir, "long.mkv", "-i", mp4, "-c", "copy"),
	}
	for _, path := range files {
		got, cr, err := keyframesOfFile(t, path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(path)
		if diff := sameTimes(got, ffprobeKeyframes(t, path)); diff != "" {
			t.Errorf("%s: %s", name, diff)
		}
		if st.Size() < 15<<20 {
			t.Errorf("%s: only %d bytes, too small to make the point", name, st.Size())
		}
		read := cr.bytes.Load()
		if read > st.Size()/20 {
			t.Errorf("%s: read %d of %d bytes (%.1f%%), want under 5%%", name, read, st.Size(), 100*float64(read)/float64(st.Size()))
		}
		t.Logf("%s: %d keyframes from %d of %d bytes (%.2f%%) in %d reads", name, len(got), read, st.Size(),
			100*float64(read)/float64(st.Size()), cr.reads.Load())
	}
}
