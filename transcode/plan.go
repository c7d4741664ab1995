package transcode

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/swarmgate/swarmgate/media"
)

// Mode is how a variant is made from its source.
type Mode string

const (
	// Remux copies the H.264 video and makes the audio AAC (copied when it is AAC already).
	// Segments are cut at the source's keyframes, so it needs the file's keyframe index.
	Remux Mode = "remux"
	// Transcode makes H.264 video and AAC audio; keyframes are forced at fixed segment boundaries.
	Transcode Mode = "transcode"
)

// Policy is what the operator allows (--transcode).
type Policy string

const (
	PolicyOff   Policy = "off"   // no HLS: direct play only
	PolicyRemux Policy = "remux" // remux only (no re-encoding of video)
	PolicyOn    Policy = "on"    // remux and transcode
)

// ParsePolicy reads --transcode's value.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case PolicyOff, PolicyRemux, PolicyOn:
		return p, nil
	}
	return "", fmt.Errorf("%q: want off, remux or on", s)
}

// Allows says whether p lets a variant of mode m be made.
func (p Policy) Allows(m Mode) bool {
	switch p {
	case PolicyOn:
		return m == Remux || m == Transcode
	case PolicyRemux:
		return m == Remux
	}
	return false
}

// HWAccel names a hardware H.264 encoder (--hwaccel). "" is ffmpeg's software encoder, libx264.
type HWAccel string

const (
	HWNone  HWAccel = ""
	HWVAAPI HWAccel = "vaapi"
	HWNVENC HWAccel = "nvenc"
	HWQSV   HWAccel = "qsv"
)

// ParseHWAccel reads --hwaccel's value ("", "none", vaapi, nvenc, qsv).
func ParseHWAccel(s string) (HWAccel, error) {
	switch s {
	case "", "none", "off":
		return HWNone, nil
	case string(HWVAAPI), string(HWNVENC), string(HWQSV):
		return HWAccel(s), nil
	}
	return "", fmt.Errorf("%q: want vaapi, nvenc, qsv or none", s)
}

// VariantName names a variant in URLs: its mode, and "-a{N}" when it plays audio stream N other
// than the file's default one. ParseVariantName reads it back.
func VariantName(m Mode, audio int) string {
	if audio < 0 {
		return string(m)
	}
	return fmt.Sprintf("%s-a%d", m, audio)
}

// ErrBadVariant is a variant name that is not one.
var ErrBadVariant = errors.New("not a variant name")

// ParseVariantName reads "remux", "transcode", "remux-a2", "transcode-a1"; audio is -1 when the
// name picks no audio stream (the file's default one plays).
func ParseVariantName(s string) (m Mode, audio int, err error) {
	name, track, hasTrack := strings.Cut(s, "-a")
	m = Mode(name)
	if m != Remux && m != Transcode {
		return "", 0, fmt.Errorf("%w: %q (want remux or transcode, with -aN for audio stream N)", ErrBadVariant, s)
	}
	if !hasTrack {
		return m, -1, nil
	}
	n, err := strconv.Atoi(track)
	if err != nil || n < 0 || n > 1000 || strconv.Itoa(n) != track {
		return "", 0, fmt.Errorf("%w: %q: audio stream %q is not a stream index", ErrBadVariant, s, track)
	}
	return m, n, nil
}

// Why a file cannot be made into a variant; the gateway answers them as 4xx.
var (
	ErrNoVideo    = errors.New("the file has no video")
	ErrNotH264    = errors.New("remux copies the video, which must be H.264 for HLS in MPEG-TS: transcode it")
	ErrNoIndex    = errors.New("the file's container keeps no keyframe index, so it cannot be cut without re-encoding: transcode it")
	ErrNoDuration = errors.New("the file's duration is unknown")
	ErrNoAudio    = errors.New("no such audio stream in the file")
)

// Layout is where a variant's segments start and end on the source's timeline (ffmpeg's, in
// seconds): segment i covers [Bounds[i], Bounds[i+1]). It is fixed before any segment exists,
// so that the playlist is whole from the first request and every job cuts the same segments.
type Layout struct {
	Bounds []float64
}

// Segments is how many segments there are.
func (l Layout) Segments() int { return len(l.Bounds) - 1 }

// Duration is segment i's length in seconds.
func (l Layout) Duration(i int) float64 { return l.Bounds[i+1] - l.Bounds[i] }

// FixedLayout cuts a file of the given duration, starting at start, into segments of seg seconds
// (the last one shorter): what a transcode does, forcing a keyframe at each boundary.
func FixedLayout(start, duration, seg float64) (Layout, error) {
	if !(duration > 0) || math.IsInf(duration, 0) {
		return Layout{}, ErrNoDuration
	}
	n := int(math.Ceil(duration/seg - 1e-6))
	b := make([]float64, 0, n+1)
	for i := 0; i < n; i++ {
		b = append(b, start+float64(i)*seg)
	}
	// A last sliver shorter than a tenth of a segment joins the one before it.
	if n > 1 && start+duration-b[n-1] < seg/10 {
		b = b[:n-1]
	}
	return Layout{Bounds: append(b, start+duration)}, nil
}

// KeyframeLayout cuts at the source's keyframes: each segment starts at a keyframe and runs to
// the first keyframe at least seg seconds later (Jellyfin's way for copied video), so segments are
// about seg long, longer where keyframes are sparse.
func KeyframeLayout(keyframes []float64, start, duration, seg float64) (Layout, error) {
	if !(duration > 0) || math.IsInf(duration, 0) {
		return Layout{}, ErrNoDuration
	}
	if len(keyframes) == 0 {
		return Layout{}, ErrNoIndex
	}
	end := start + duration
	b := []float64{keyframes[0]}
	for _, k := range keyframes[1:] {
		if k >= end-seg/10 {
			break
		}
		if k-b[len(b)-1] >= seg-1e-3 {
			b = append(b, k)
		}
	}
	if end <= b[len(b)-1] {
		return Layout{}, fmt.Errorf("keyframes run past the duration (%.3f s ≥ %.3f s)", b[len(b)-1], end)
	}
	return Layout{Bounds: append(b, end)}, nil
}

// Playlist is the variant's VOD media playlist: every segment, named {i}.ts, and the end.
func (l Layout) Playlist() string {
	var sb strings.Builder
	longest := 0.0
	for i := 0; i < l.Segments(); i++ {
		longest = math.Max(longest, l.Duration(i))
	}
	fmt.Fprintf(&sb, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:0\n",
		int(math.Ceil(longest)))
	for i := 0; i < l.Segments(); i++ {
		fmt.Fprintf(&sb, "#EXTINF:%.6f,\n%d.ts\n", l.Duration(i), i)
	}
	sb.WriteString("#EXT-X-ENDLIST\n")
	return sb.String()
}

// Source is the file a variant is made from.
type Source struct {
	// URL is where ffmpeg reads the file: the gateway's own /stream, which fetches pieces as
	// they are asked for and lets ffmpeg seek with ranges.
	URL  string
	Info *media.Info
	// Keyframes reads the video's keyframe times (media.Keyframes), which a remux cuts at; it is
	// called once, when the remux variant is first asked for. nil, or ErrNoIndex: the container
	// keeps no index.
	Keyframes func() ([]float64, error)
}

// audioTrack picks the audio stream a variant plays: want (a stream index), or with want < 0 the
// default track, else the first; nil when the file has no audio.
func audioTrack(info *media.Info, want int) (*media.Track, error) {
	if want >= 0 {
		for i := range info.Audio {
			if info.Audio[i].Index == want {
				return &info.Audio[i], nil
			}
		}
		return nil, fmt.Errorf("%w: %d", ErrNoAudio, want)
	}
	for i := range info.Audio {
		if info.Audio[i].Default {
			return &info.Audio[i], nil
		}
	}
	if len(info.Audio) > 0 {
		return &info.Audio[0], nil
	}
	return nil, nil
}
