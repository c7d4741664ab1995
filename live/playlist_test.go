package live

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hlsSegment is a media segment as a client reads it from the playlist.
type hlsSegment struct {
	uri, mapURI string
	dur         float64
	pdt         time.Time
	disc, gap   bool
	msn, dsn    uint64 // media sequence and discontinuity sequence numbers, by RFC 8216 §6.2.1/§4.3.3.3
}

type hlsPlaylist struct {
	target, mediaSeq, discSeq uint64
	segments                  []hlsSegment
}

// parseHLS reads a live media playlist and fails the test on anything RFC 8216 forbids that
// this package could get wrong.
func parseHLS(t *testing.T, b []byte) hlsPlaylist {
	t.Helper()
	var p hlsPlaylist
	sc := bufio.NewScanner(bytes.NewReader(b))
	seen := map[string]int{}
	var cur hlsSegment
	var haveInf, havePDT bool
	var mapURI string
	line := 0
	for sc.Scan() {
		l := sc.Text()
		line++
		if line == 1 {
			if l != "#EXTM3U" {
				t.Fatalf("first line %q, want #EXTM3U", l)
			}
			continue
		}
		tag, val, _ := strings.Cut(l, ":")
		num := func() uint64 {
			n, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				t.Fatalf("line %d %q: not a decimal integer", line, l)
			}
			return n
		}
		switch tag {
		case "#EXT-X-VERSION", "#EXT-X-TARGETDURATION", "#EXT-X-MEDIA-SEQUENCE", "#EXT-X-DISCONTINUITY-SEQUENCE":
			if seen[tag]++; seen[tag] > 1 {
				t.Fatalf("%s twice", tag)
			}
			if len(p.segments) > 0 || haveInf {
				t.Fatalf("%s after the first segment", tag)
			}
			switch tag {
			case "#EXT-X-VERSION":
				if v := num(); v != 7 {
					t.Fatalf("version %d, want 7", v)
				}
			case "#EXT-X-TARGETDURATION":
				p.target = num()
			case "#EXT-X-MEDIA-SEQUENCE":
				p.mediaSeq = num()
			case "#EXT-X-DISCONTINUITY-SEQUENCE":
				p.discSeq = num()
			}
		case "#EXT-X-MAP":
			if !strings.HasPrefix(val, `URI="`) || !strings.HasSuffix(val, `"`) || len(val) < 7 {
				t.Fatalf("line %d: EXT-X-MAP %q is not URI=\"...\"", line, val)
			}
			mapURI = val[5 : len(val)-1]
		case "#EXT-X-DISCONTINUITY":
			cur.disc = true
		case "#EXT-X-GAP":
			cur.gap = true
		case "#EXT-X-PROGRAM-DATE-TIME":
			pdt, err := time.Parse(time.RFC3339Nano, val)
			if err != nil {
				t.Fatalf("line %d: program date time %q: %v", line, val, err)
			}
			cur.pdt, havePDT = pdt, true
		case "#EXTINF":
			d, title, ok := strings.Cut(val, ",")
			f, err := strconv.ParseFloat(d, 64)
			if !ok || title != "" || err != nil || f <= 0 {
				t.Fatalf("line %d: EXTINF %q", line, val)
			}
			cur.dur, haveInf = f, true
		case "#EXT-X-ENDLIST":
			t.Fatal("a live playlist with EXT-X-ENDLIST")
		default:
			if strings.HasPrefix(l, "#") || l == "" {
				t.Fatalf("line %d: unexpected %q", line, l)
			}
			if !haveInf || !havePDT {
				t.Fatalf("line %d: URI %q without EXTINF and PROGRAM-DATE-TIME", line, l)
			}
			cur.uri, cur.mapURI = l, mapURI
			cur.msn = p.mediaSeq + uint64(len(p.segments))
			cur.dsn = p.discSeq
			if n := len(p.segments); n > 0 {
				cur.dsn = p.segments[n-1].dsn
			}
			if cur.disc {
				cur.dsn++
			}
			p.segments = append(p.segments, cur)
			cur, haveInf, havePDT = hlsSegment{}, false, false
		}
	}
	if seen["#EXT-X-VERSION"] != 1 || seen["#EXT-X-TARGETDURATION"] != 1 || seen["#EXT-X-MEDIA-SEQUENCE"] != 1 {
		t.Fatalf("missing header tags: %v\n%s", seen, b)
	}
	if haveInf || havePDT || cur.disc || cur.gap {
		t.Fatal("tags after the last URI")
	}
	for _, s := range p.segments {
		if r := uint64(math.Round(s.dur)); r > p.target {
			t.Errorf("%s: EXTINF %.3f rounds to %d, above the target duration %d", s.uri, s.dur, r, p.target)
		}
	}
	return p
}

func segURI(e Entry) string { return SegmentName(e.Kind, e.Seq) }

func render(t *testing.T, w *Window, maxSegs int) (hlsPlaylist, string) {
	t.Helper()
	b, err := w.Playlist(PlaylistOptions{URI: segURI, MaxSegments: maxSegs})
	if err != nil {
		t.Fatal(err)
	}
	return parseHLS(t, b), string(b)
}

func TestPlaylist(t *testing.T) {
	b := newBroadcaster(t)
	w := newTestWindow(t, b, &clock{now: t0.Add(time.Minute)}, nil)
	adder(t, w)(b.segment(KindInit, 10, t0, 0))
	durs := []time.Duration{2002 * time.Millisecond, 1500 * time.Millisecond, 2499600 * time.Microsecond, 2 * time.Second}
	at := t0.Add(123 * time.Millisecond)
	for i, d := range durs {
		adder(t, w)(b.segment(KindMedia, uint64(10+i), at, d))
		at = at.Add(d)
	}
	p, text := render(t, w, 0)
	want := fmt.Sprintf(`#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:3
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-MAP:URI="init-10.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-12-01T22:00:00.123Z
#EXTINF:2.002,
10.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-01T22:00:02.125Z
#EXTINF:1.500,
11.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-01T22:00:03.625Z
#EXTINF:2.500,
12.m4s
#EXT-X-PROGRAM-DATE-TIME:%s
#EXTINF:2.000,
13.m4s
`, t0.Add(123*time.Millisecond+2002*time.Millisecond+1500*time.Millisecond+2499*time.Millisecond).Format("2006-01-02T15:04:05.000Z"))
	if text != want {
		t.Errorf("playlist:\n%s\nwant:\n%s", text, want)
	}
	for i, s := range p.segments {
		if s.msn != uint64(10+i) || s.mapURI != "init-10.mp4" || s.disc {
			t.Errorf("segment %d: %+v", i, s)
		}
	}

	// Without an init: no EXT-X-MAP. An empty window: a header only.
	bare := newTestWindow(t, b, &clock{now: t0}, nil)
	if p, text := render(t, bare, 0); len(p.segments) != 0 || p.mediaSeq != 0 || p.target != 1 {
		t.Errorf("empty window:\n%s", text)
	}
	adder(t, bare)(b.media(0, t0))
	if p, text := render(t, bare, 0); len(p.segments) != 1 || p.segments[0].mapURI != "" || strings.Contains(text, "MAP") {
		t.Errorf("no init:\n%s", text)
	}

	// Bad URIs are refused rather than written into the playlist.
	for _, uri := range []func(Entry) string{
		nil,
		func(Entry) string { return "" },
		func(Entry) string { return `a"b` },
		func(e Entry) string { return "x.m4s\n#EXT-X-ENDLIST" },
	} {
		if out, err := w.Playlist(PlaylistOptions{URI: uri}); err == nil {
			t.Errorf("a bad URI function gave a playlist:\n%s", out)
		}
	}
}

func TestPlaylistDiscontinuities(t *testing.T) {
	b := newBroadcaster(t)
	c := &clock{now: t0}
	w := newTestWindow(t, b, c, func(wc *WindowConfig) { wc.Duration = 20 * time.Second })
	add := func(kind Kind, seq uint64) {
		t.Helper()
		dur := 2 * time.Second
		if kind == KindInit {
			dur = 0
		}
		adder(t, w)(b.segment(kind, seq, c.Now(), dur))
		if kind == KindMedia {
			c.Advance(2 * time.Second)
		}
	}
	add(KindInit, 0)
	for _, seq := range []uint64{0, 1, 2, 4, 5} { // 3 was dropped
		add(KindMedia, seq)
	}
	add(KindInit, 6) // the encoder restarted
	for _, seq := range []uint64{6, 7} {
		add(KindMedia, seq)
	}
	p, text := render(t, w, 0)
	var got []string
	for _, s := range p.segments {
		g := ""
		if s.gap {
			g = "/gap" + strconv.FormatFloat(s.dur, 'f', 3, 64)
		}
		got = append(got, fmt.Sprintf("%s/%s/d%v/dsn%d%s", s.uri, s.mapURI, s.disc, s.dsn, g))
	}
	// The dropped seq 3 is a 2 s #EXT-X-GAP placeholder (the time between 2 and 4 has room for it).
	want := "0.m4s/init-0.mp4/dfalse/dsn0 1.m4s/init-0.mp4/dfalse/dsn0 2.m4s/init-0.mp4/dfalse/dsn0 " +
		"3.m4s/init-0.mp4/dfalse/dsn0/gap2.000 4.m4s/init-0.mp4/dtrue/dsn1 5.m4s/init-0.mp4/dfalse/dsn1 " +
		"6.m4s/init-6.mp4/dtrue/dsn2 7.m4s/init-6.mp4/dfalse/dsn2"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("segments\n%s\nwant\n%s\n%s", g, want, text)
	}
	if p.mediaSeq != 0 {
		t.Errorf("media sequence %d, want the first seq 0", p.mediaSeq)
	}

	// As the window slides (and with a short playlist), every segment keeps its discontinuity
	// sequence number, the media sequence is the first segment's seq, and each keeps its map.
	byURI := map[string]hlsSegment{}
	for _, s := range p.segments {
		byURI[s.uri] = s
	}
	for step := 0; step < 8; step++ {
		add(KindMedia, uint64(8+step))
		for _, maxSegs := range []int{0, 3} {
			p, text := render(t, w, maxSegs)
			if len(p.segments) == 0 {
				t.Fatalf("step %d: empty playlist", step)
			}
			first := p.segments[0].uri
			if want := strings.TrimSuffix(first, ".m4s"); strconv.FormatUint(p.mediaSeq, 10) != want {
				t.Errorf("step %d max %d: media sequence %d, first segment %s", step, maxSegs, p.mediaSeq, first)
			}
			if maxSegs > 0 && len(p.segments) != maxSegs {
				t.Errorf("step %d: %d segments, want %d", step, len(p.segments), maxSegs)
			}
			for _, s := range p.segments {
				old, ok := byURI[s.uri]
				if !ok {
					byURI[s.uri] = s
					continue
				}
				if old.dsn != s.dsn || old.mapURI != s.mapURI {
					t.Errorf("step %d max %d: %s was dsn %d map %s, now dsn %d map %s\n%s", step, maxSegs, s.uri,
						old.dsn, old.mapURI, s.dsn, s.mapURI, text)
				}
				// HLS numbers by position; the #EXT-X-GAP placeholder for the missing seq 3 keeps
				// every segment's media sequence number equal to its seq.
				seq, _ := strconv.ParseUint(strings.TrimSuffix(s.uri, ".m4s"), 10, 64)
				if want := seq; s.msn != want {
					t.Errorf("step %d max %d: %s has media sequence number %d, want %d", step, maxSegs, s.uri, s.msn, want)
				}
			}
		}
	}
	// Segment 6 (after the new init) is first now: the gap's discontinuity has left.
	if p, text := render(t, w, 0); p.discSeq != 1 || p.segments[0].uri != "6.m4s" || !p.segments[0].disc ||
		p.segments[0].dsn != 2 || p.segments[0].mapURI != "init-6.mp4" {
		t.Errorf("after the old segments left, want EXT-X-DISCONTINUITY-SEQUENCE:1 then 6.m4s (dsn 2, init-6.mp4):\n%s", text)
	}

	// All gone: the media sequence moves past the last segment.
	c.Advance(time.Hour)
	if p, text := render(t, w, 0); len(p.segments) != 0 || p.mediaSeq != 16 {
		t.Errorf("drained window:\n%s", text)
	}
}

func TestPlaylistTargetDurationNeverShrinks(t *testing.T) {
	b := newBroadcaster(t)
	c := &clock{now: t0}
	w := newTestWindow(t, b, c, func(wc *WindowConfig) { wc.Duration = 10 * time.Second })
	adder(t, w)(b.segment(KindMedia, 0, c.Now(), 6*time.Second))
	if p, _ := render(t, w, 0); p.target != 6 {
		t.Errorf("target %d, want 6", p.target)
	}
	c.Advance(20 * time.Second)
	adder(t, w)(b.segment(KindMedia, 1, c.Now(), 2*time.Second))
	if p, _ := render(t, w, 0); p.target != 6 || len(p.segments) != 1 {
		t.Errorf("after the 6 s segment left: target %d with %d segments, want 6 and 1", p.target, len(p.segments))
	}
}

// TestPlaylistGaps: each missing seq between two rendered segments is one #EXT-X-GAP
// placeholder sharing the time between them, so media sequence numbers stay equal to seq;
// gaps before the first rendered segment are not rendered.
func TestPlaylistGaps(t *testing.T) {
	b := newBroadcaster(t)
	c := &clock{now: t0}
	w := newTestWindow(t, b, c, nil)
	add := adder(t, w)
	add(b.segment(KindInit, 0, t0, 0))
	for _, seq := range []uint64{0, 1, 4, 5} { // 2 and 3 were dropped
		add(b.segment(KindMedia, seq, t0.Add(time.Duration(seq)*time.Second), time.Second))
	}
	p, text := render(t, w, 0)
	var got []string
	for _, s := range p.segments {
		got = append(got, fmt.Sprintf("%s:msn%d:gap%v:%.3f:%s", s.uri, s.msn, s.gap, s.dur, s.pdt.Sub(t0)))
	}
	want := "0.m4s:msn0:gapfalse:1.000:0s 1.m4s:msn1:gapfalse:1.000:1s 2.m4s:msn2:gaptrue:1.000:2s " +
		"3.m4s:msn3:gaptrue:1.000:3s 4.m4s:msn4:gapfalse:1.000:4s 5.m4s:msn5:gapfalse:1.000:5s"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("segments\n%s\nwant\n%s\n%s", g, want, text)
	}
	if p, text := render(t, w, 2); len(p.segments) != 2 || p.mediaSeq != 4 || p.segments[0].gap {
		t.Errorf("newest 2 segments: want 4.m4s and 5.m4s from media sequence 4:\n%s", text)
	}
}
