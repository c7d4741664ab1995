package live

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PlaylistOptions shape Window.Playlist.
type PlaylistOptions struct {
	// URI gives each segment's URI, relative to the playlist or absolute, e.g. "42.m4s" or
	// "init-40.mp4" (see SegmentName). Required. It must not contain quotes or line breaks.
	URI func(Entry) string
	// MaxSegments renders only the newest n media segments (0: the whole window). A short live
	// playlist keeps reloads small; the manifest still lists the whole window.
	MaxSegments int
}

// Playlist renders the window as an HLS live media playlist (RFC 8216, version 7, fMP4):
// #EXT-X-TARGETDURATION is the longest rounded EXTINF the window ever accepted (it never
// shrinks), #EXT-X-MEDIA-SEQUENCE the first rendered segment's Seq, each segment has its
// #EXT-X-PROGRAM-DATE-TIME and #EXTINF, #EXT-X-MAP names the init segment heading it, and
// #EXT-X-DISCONTINUITY precedes a segment after a gap in Seq or a new init segment, counted in
// #EXT-X-DISCONTINUITY-SEQUENCE once it has left the playlist. Media segments with no init
// segment in the window are rendered without #EXT-X-MAP.
//
// When the window keeps bytes (MaxBytes > 0), the oldest media segments that lost theirs are left
// out: nothing could serve them.
//
// Each Seq missing between two rendered segments (a gap: dropped segments) is rendered as a
// placeholder marked #EXT-X-GAP (RFC 8216bis; hls.js 1.7 skips it without fetching it), with
// its URI SegmentName(KindMedia, seq) and an equal share of the time between the segments
// around it as duration. So a segment's media sequence number is always its Seq.
func (w *Window) Playlist(opts PlaylistOptions) ([]byte, error) {
	if opts.URI == nil {
		return nil, fmt.Errorf("live: playlist needs a URI function")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.evict()

	media := w.media
	if w.cfg.MaxBytes > 0 {
		// Segments whose bytes went under MaxBytes cannot be served: the playlist (and so how
		// far back a viewer can seek) starts after them. The manifest still lists them.
		for len(media) > 0 && media[0].Data == nil {
			media = media[1:]
		}
	}
	if opts.MaxSegments > 0 && len(media) > opts.MaxSegments {
		media = media[len(media)-opts.MaxSegments:]
	}
	skipped := w.media[:len(w.media)-len(media)]
	discSeq := w.evictedDisc
	for _, s := range skipped {
		if s.Discontinuity {
			discSeq++
		}
	}
	mediaSeq := uint64(0)
	switch {
	case len(media) > 0:
		mediaSeq = media[0].Seq
	case w.anyMedia:
		mediaSeq = w.lastSeq + 1 // everything was removed: the next one comes next
	}

	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:%d\n",
		max(w.target, 1), mediaSeq)
	if discSeq > 0 {
		fmt.Fprintf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", discSeq)
	}
	var curInit, prev *Segment
	for _, s := range media {
		if prev != nil && s.Missing > 0 {
			if err := writeGaps(&b, opts.URI, prev, s, max(w.target, 1)); err != nil {
				return nil, err
			}
		}
		prev = s
		if s.Discontinuity {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if in := w.initFor(s.Seq); in != nil && in != curInit {
			uri, err := playlistURI(opts.URI, in.Entry)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"%s\"\n", uri)
			curInit = in
		}
		uri, err := playlistURI(opts.URI, s.Entry)
		if err != nil {
			return nil, err
		}
		ms := (int64(s.DurationUS) + 500) / 1000
		fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n#EXTINF:%d.%03d,\n%s\n",
			s.Start().Format("2006-01-02T15:04:05.000Z"), ms/1000, ms%1000, uri)
	}
	if w.end != nil {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return []byte(b.String()), nil
}

// writeGaps renders the media sequence numbers missing between prev and next as #EXT-X-GAP
// placeholders, sharing the time from prev's end to next's start (each at most target seconds).
func writeGaps(b *strings.Builder, uri func(Entry) string, prev, next *Segment, target int) error {
	n := next.Seq - prev.Seq - 1
	start := prev.Start().Add(prev.Duration())
	each := next.Start().Sub(start) / time.Duration(n)
	if each < time.Millisecond {
		each = prev.Duration()
	}
	each = min(each, time.Duration(target)*time.Second).Truncate(time.Millisecond)
	for i := uint64(0); i < n; i++ {
		e := Entry{Stream: prev.Stream, Seq: prev.Seq + 1 + i, Kind: KindMedia}
		u, err := playlistURI(uri, e)
		if err != nil {
			return err
		}
		ms := each.Milliseconds()
		fmt.Fprintf(b, "#EXT-X-GAP\n#EXT-X-PROGRAM-DATE-TIME:%s\n#EXTINF:%d.%03d,\n%s\n",
			start.Add(time.Duration(i)*each).UTC().Format("2006-01-02T15:04:05.000Z"), ms/1000, ms%1000, u)
	}
	return nil
}

func playlistURI(f func(Entry) string, e Entry) (string, error) {
	uri := f(e)
	if uri == "" || strings.ContainsAny(uri, "\"\r\n") {
		return "", fmt.Errorf("live: playlist URI %s for %s segment %d: empty or has a quote or line break", strconv.Quote(uri), e.Kind, e.Seq)
	}
	return uri, nil
}
