// Package media learns what a video file holds: its container, its video, audio and subtitle
// tracks with the codec strings a browser checks (MediaSource.isTypeSupported, canPlayType), and
// its duration. It asks ffprobe, which reads only the parts of the file it needs (the header, and
// an index at the end where the container keeps one), so a file still downloading over
// BitTorrent can be probed through the gateway's own /stream.
//
// Keyframes reads the video's keyframe times from the container's own index (Matroska Cues, MP4
// sample tables), a few ranges of the file, for a remux to cut at.
//
// The page decides how to play from this (direct, remux or transcode); the gateway never guesses
// a browser's abilities.
package media

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// Info is what a file holds.
type Info struct {
	// Container is ffprobe's format name: "matroska,webm", "mov,mp4,m4a,3gp,3g2,mj2", "avi", ...
	Container string `json:"container"`
	// Duration is in seconds (0 when the container does not say).
	Duration float64 `json:"duration"`
	// StartTime is the first timestamp, in seconds, on ffmpeg's timeline (ffprobe's start_time):
	// ffmpeg's -ss counts from it, and copied timestamps carry it.
	StartTime float64 `json:"start_time"`
	// Bitrate is the whole file's, bits per second (0 when unknown).
	Bitrate   int64   `json:"bitrate"`
	Video     []Track `json:"video"`
	Audio     []Track `json:"audio"`
	Subtitles []Track `json:"subtitles"`
}

// Track is one stream of the file.
type Track struct {
	// Index is the stream's index in the file, as ffmpeg's -map 0:N names it.
	Index int `json:"index"`
	// Codec is ffprobe's codec name: h264, hevc, vp9, av1, mpeg4, aac, ac3, eac3, dts, mp3, opus,
	// subrip, ass, mov_text, hdmv_pgs_subtitle, ...
	Codec string `json:"codec"`
	// CodecString is the RFC 6381 codecs parameter for the track ("avc1.64001f", "hvc1.1.6.L93.B0",
	// "mp4a.40.2", "ac-3"); empty where there is none (subtitles, codecs no browser plays).
	CodecString string `json:"codec_string,omitempty"`
	Profile     string `json:"profile,omitempty"`
	Width       int    `json:"width,omitempty"`
	Height      int    `json:"height,omitempty"`
	// BitDepth is the video's bits per sample (8, 10), 0 when unknown.
	BitDepth int    `json:"bit_depth,omitempty"`
	Channels int    `json:"channels,omitempty"`
	Language string `json:"language,omitempty"` // ISO 639-2 as tagged ("eng", "fra"), or ""
	Title    string `json:"title,omitempty"`
	Default  bool   `json:"default,omitempty"`
	Forced   bool   `json:"forced,omitempty"`
	// Text is a subtitle track made of text, which WebVTT can carry (not a picture-based one).
	Text bool `json:"text,omitempty"`
}

// ErrNoFFprobe means ffprobe is not installed where it was looked for.
var ErrNoFFprobe = errors.New("ffprobe not found")

// Probe runs ffprobe (the binary at ffprobe, or found in PATH by that name) on src, a file path
// or an http(s) URL, and reads what it reports.
func Probe(ctx context.Context, ffprobe, src string) (*Info, error) {
	bin, err := exec.LookPath(ffprobe)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoFFprobe, err)
	}
	cmd := exec.CommandContext(ctx, bin, "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
		// Over HTTP ffprobe asks for ranges as it parses; a slow piece is waited for, not fatal.
		"-rw_timeout", "60000000", src)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return nil, fmt.Errorf("ffprobe: %v: %s", err, msg)
	}
	return parseProbe(stdout.Bytes())
}

// probeOutput is the part of ffprobe's JSON that Info is made of.
type probeOutput struct {
	Streams []struct {
		Index       int               `json:"index"`
		CodecName   string            `json:"codec_name"`
		CodecType   string            `json:"codec_type"`
		Profile     string            `json:"profile"`
		Width       int               `json:"width"`
		Height      int               `json:"height"`
		Level       int               `json:"level"`
		PixFmt      string            `json:"pix_fmt"`
		BitsPerRaw  string            `json:"bits_per_raw_sample"`
		Channels    int               `json:"channels"`
		CodecTagStr string            `json:"codec_tag_string"`
		Disposition map[string]int    `json:"disposition"`
		Tags        map[string]string `json:"tags"`
	} `json:"streams"`
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
		StartTime  string `json:"start_time"`
		BitRate    string `json:"bit_rate"`
	} `json:"format"`
}

func parseProbe(b []byte) (*Info, error) {
	var out probeOutput
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("ffprobe's output: %w", err)
	}
	if out.Format.FormatName == "" {
		return nil, errors.New("ffprobe found no container")
	}
	info := &Info{Container: out.Format.FormatName, Video: []Track{}, Audio: []Track{}, Subtitles: []Track{}}
	info.Duration, _ = strconv.ParseFloat(out.Format.Duration, 64)
	info.StartTime, _ = strconv.ParseFloat(out.Format.StartTime, 64)
	info.Bitrate, _ = strconv.ParseInt(out.Format.BitRate, 10, 64)
	for _, s := range out.Streams {
		t := Track{
			Index:    s.Index,
			Codec:    s.CodecName,
			Profile:  s.Profile,
			Language: tag(s.Tags, "language"),
			Title:    tag(s.Tags, "title"),
			Default:  s.Disposition["default"] == 1,
			Forced:   s.Disposition["forced"] == 1,
		}
		if t.Language == "und" {
			t.Language = ""
		}
		switch s.CodecType {
		case "video":
			if s.Disposition["attached_pic"] == 1 {
				continue // cover art, not a picture to play
			}
			t.Width, t.Height = s.Width, s.Height
			t.BitDepth = bitDepth(s.PixFmt, s.BitsPerRaw)
			t.CodecString = videoCodecString(s.CodecName, s.Profile, s.Level, t.BitDepth, s.CodecTagStr)
			info.Video = append(info.Video, t)
		case "audio":
			t.Channels = s.Channels
			t.CodecString = audioCodecString(s.CodecName, s.Profile)
			info.Audio = append(info.Audio, t)
		case "subtitle":
			t.Text = textSubtitles[s.CodecName]
			info.Subtitles = append(info.Subtitles, t)
		}
	}
	return info, nil
}

// tag reads a stream tag whatever its case (Matroska's are upper case, MP4's lower).
func tag(tags map[string]string, name string) string {
	for k, v := range tags {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// textSubtitles are the subtitle codecs made of text, which convert to WebVTT.
var textSubtitles = map[string]bool{"subrip": true, "srt": true, "ass": true, "ssa": true, "mov_text": true, "webvtt": true, "text": true}

func bitDepth(pixFmt, bitsPerRaw string) int {
	if n, err := strconv.Atoi(bitsPerRaw); err == nil && n > 0 {
		return n
	}
	switch {
	case strings.Contains(pixFmt, "p10"):
		return 10
	case strings.Contains(pixFmt, "p12"):
		return 12
	case pixFmt != "":
		return 8
	}
	return 0
}

// h264Profiles are profile_idc by ffprobe's profile names, with the constraint flags byte.
var h264Profiles = map[string][2]int{
	"Constrained Baseline":  {66, 0xe0},
	"Baseline":              {66, 0},
	"Main":                  {77, 0},
	"Extended":              {88, 0},
	"High":                  {100, 0},
	"High 10":               {110, 0},
	"High 4:2:2":            {122, 0},
	"High 4:4:4 Predictive": {244, 0},
}

// videoCodecString is RFC 6381's codecs parameter for a video track.
func videoCodecString(codec, profile string, level, depth int, tagStr string) string {
	switch codec {
	case "h264":
		p, ok := h264Profiles[profile]
		if !ok {
			p = [2]int{100, 0} // unknown: say High, the most common
		}
		if level <= 0 {
			level = 40
		}
		return fmt.Sprintf("avc1.%02x%02x%02x", p[0], p[1], level)
	case "hevc":
		// general_profile_idc and its compatibility flags (Main: 1 and 0x6; Main 10: 2 and 0x4),
		// Main tier ("L") and ffprobe's level (30 × the level number), constraint byte B0.
		prefix := "hvc1"
		if tagStr == "hev1" {
			prefix = "hev1"
		}
		p, compat := 1, 6
		if profile == "Main 10" || depth == 10 {
			p, compat = 2, 4
		}
		if level <= 0 {
			level = 120
		}
		return fmt.Sprintf("%s.%d.%d.L%d.B0", prefix, p, compat, level)
	case "vp9":
		if depth == 0 {
			depth = 8
		}
		prof := 0
		if depth > 8 {
			prof = 2
		}
		return fmt.Sprintf("vp09.%02d.10.%02d", prof, depth)
	case "vp8":
		return "vp8"
	case "av1":
		if depth == 0 {
			depth = 8
		}
		return fmt.Sprintf("av01.0.04M.%02d", depth)
	case "mpeg4":
		return "mp4v.20.9" // MPEG-4 part 2 (XviD, DivX): no browser plays it
	}
	return ""
}

// audioCodecString is RFC 6381's codecs parameter for an audio track.
func audioCodecString(codec, profile string) string {
	switch codec {
	case "aac":
		switch profile {
		case "HE-AAC":
			return "mp4a.40.5"
		case "HE-AACv2":
			return "mp4a.40.29"
		}
		return "mp4a.40.2"
	case "mp3":
		return "mp4a.6b"
	case "ac3":
		return "ac-3"
	case "eac3":
		return "ec-3"
	case "opus":
		return "opus"
	case "vorbis":
		return "vorbis"
	case "flac":
		return "flac"
	case "dts":
		return "dtsc"
	case "truehd":
		return "mlpa"
	}
	return ""
}
