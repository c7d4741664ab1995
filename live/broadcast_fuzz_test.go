package live

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// writeCutPlaylist writes segments the way ffmpeg's HLS muxer does, for FuzzParseCutPlaylist's
// round trip: durations in whole microseconds, times in RFC 3339 with their own offset.
func writeCutPlaylist(first uint64, segs []cutSegment) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MEDIA-SEQUENCE:%d\n", first)
	mapURI := ""
	for _, s := range segs {
		if s.mapURI != mapURI {
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"%s\"\n", s.mapURI)
			mapURI = s.mapURI
		}
		us := s.dur.Microseconds()
		fmt.Fprintf(&b, "#EXTINF:%d.%06d,\n", us/1e6, us%1e6)
		if !s.pdt.IsZero() {
			fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", s.pdt.Format(time.RFC3339Nano))
		}
		fmt.Fprintf(&b, "%s\n", s.uri)
	}
	return []byte(b.String())
}

// FuzzParseCutPlaylist reads ffmpeg's playlist as the broadcaster does while ffmpeg writes it:
// every segment it returns has a positive duration and a file name, there are no more of them
// than lines, and writing them out again reads back the same.
//
//	go test -run '^$' -fuzz '^FuzzParseCutPlaylist$' -fuzztime 60s -parallel 1 ./live/
func FuzzParseCutPlaylist(f *testing.F) {
	f.Add([]byte("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n" +
		"#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.002000,\n#EXT-X-PROGRAM-DATE-TIME:2026-12-01T22:00:00.000+0000\nseg3.m4s\n" +
		"#EXTINF:1.000000,\n#EXT-X-PROGRAM-DATE-TIME:2026-12-01T22:00:02.002+0000\nseg4.m4s\n#EXTINF:1.0,\nseg5.m"))
	f.Add([]byte("#EXT-X-MAP:URI=\"a.mp4\",BYTERANGE=\"1@0\"\n#EXTINF:0.5,title\n#EXT-X-PROGRAM-DATE-TIME:2026-12-01T22:00:00Z\n  s.m4s  \n#EXT-X-MAP:URI=\"b.mp4\"\n#EXTINF:1,\nt.m4s\n#EXT-X-ENDLIST\n"))
	f.Add([]byte("#EXTINF:-1,\nneg.m4s\n#EXTINF:NaN,\nnan.m4s\n#EXTINF:Inf,\ninf.m4s\n#EXTINF:1e300,\nbig.m4s\n#EXTINF:1e-9,\ntiny.m4s\n"))
	f.Add([]byte("#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n#EXTINF:1,\nlast.m4s\n"))
	f.Add([]byte("no newline"))
	f.Fuzz(func(t *testing.T, b []byte) {
		first, segs := parseCutPlaylist(b)
		if len(segs) > bytes.Count(b, []byte("\n")) {
			t.Fatalf("%d segments from %d lines", len(segs), bytes.Count(b, []byte("\n")))
		}
		for i, s := range segs {
			if s.dur <= 0 || s.uri == "" || strings.HasPrefix(s.uri, "#") || strings.TrimSpace(s.uri) != s.uri ||
				strings.Contains(s.uri+s.mapURI, "\n") {
				t.Fatalf("segment %d: %+v", i, s)
			}
		}
		again := writeCutPlaylist(first, segs)
		first2, segs2 := parseCutPlaylist(again)
		if first2 != first || len(segs2) != len(segs) {
			t.Fatalf("%q read as %d, %+v; written as %q, read back as %d, %+v", b, first, segs, again, first2, segs2)
		}
		for i := range segs {
			a, z := segs[i], segs2[i]
			if a.uri != z.uri || a.mapURI != z.mapURI || a.dur != z.dur || !a.pdt.Equal(z.pdt) {
				t.Fatalf("segment %d %+v written as %q reads back as %+v", i, a, again, z)
			}
		}
	})
}
