package media

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// need skips the test without the tool, unless in CI, which installs it (.ci/run).
func need(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed; .ci/run installs ffmpeg", tool)
		}
		t.Skipf("%s not installed (apt-get install ffmpeg)", tool)
	}
}

// makeMedia runs ffmpeg with args (inputs and codecs) into dir/name: small, short test files.
func makeMedia(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", append(append([]string{"-v", "error", "-y"}, args...), out)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v: %s", name, err, b)
	}
	return out
}

var (
	testVideo = []string{"-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"}
)

func TestProbeRealFiles(t *testing.T) {
	need(t, "ffmpeg")
	need(t, "ffprobe")
	dir := t.TempDir()
	srt := filepath.Join(dir, "fr.srt")
	if err := os.WriteFile(srt, []byte("1\n00:00:00,000 --> 00:00:00,900\nBonjour\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mkv := makeMedia(t, dir, "h264-ac3.mkv", append(append([]string{}, testVideo...), "-i", srt, "-t", "1",
		"-map", "0:v", "-map", "1:a", "-map", "2:s", "-c:v", "libx264", "-profile:v", "high", "-c:a", "ac3", "-c:s", "srt",
		"-metadata:s:a:0", "language=eng", "-metadata:s:s:0", "language=fra", "-metadata:s:s:0", "title=Français")...)
	mp4 := makeMedia(t, dir, "baseline-aac.mp4", append(append([]string{}, testVideo...), "-t", "1",
		"-c:v", "libx264", "-profile:v", "baseline", "-c:a", "aac")...)
	avi := makeMedia(t, dir, "xvid-mp3.avi", append(append([]string{}, testVideo...), "-t", "1", "-c:v", "mpeg4", "-c:a", "libmp3lame")...)
	hevc := makeMedia(t, dir, "hevc-eac3.mkv", append(append([]string{}, testVideo...), "-t", "0.4",
		"-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-c:a", "eac3")...)

	ctx := context.Background()
	for _, tc := range []struct {
		path                string
		container           string
		video, audio        string // codec strings, by prefix for video (the level varies)
		audioLang, subtitle string
		subtitleText        bool
	}{
		{mkv, "matroska,webm", "avc1.6400", "ac-3", "eng", "subrip", true},
		{mp4, "mov,mp4,m4a,3gp,3g2,mj2", "avc1.42e0", "mp4a.40.2", "", "", false},
		{avi, "avi", "mp4v.20.9", "mp4a.6b", "", "", false},
		{hevc, "matroska,webm", "hvc1.1.6.L", "ec-3", "", "", false},
	} {
		info, err := Probe(ctx, "ffprobe", tc.path)
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		name := filepath.Base(tc.path)
		if info.Container != tc.container || info.Duration < 0.3 || info.Duration > 1.5 {
			t.Errorf("%s: container %q, duration %v", name, info.Container, info.Duration)
		}
		if len(info.Video) != 1 || !strings.HasPrefix(info.Video[0].CodecString, tc.video) || info.Video[0].Width != 160 || info.Video[0].Height != 90 {
			t.Errorf("%s: video %+v, want one 160×90 track %s…", name, info.Video, tc.video)
		}
		if len(info.Audio) != 1 || info.Audio[0].CodecString != tc.audio || info.Audio[0].Language != tc.audioLang || info.Audio[0].Channels != 1 {
			t.Errorf("%s: audio %+v, want one mono %s track, language %q", name, info.Audio, tc.audio, tc.audioLang)
		}
		if tc.subtitle == "" {
			if len(info.Subtitles) != 0 {
				t.Errorf("%s: subtitles %+v", name, info.Subtitles)
			}
		} else if len(info.Subtitles) != 1 || info.Subtitles[0].Codec != tc.subtitle || info.Subtitles[0].Text != tc.subtitleText ||
			info.Subtitles[0].Language != "fra" || info.Subtitles[0].Title != "Français" {
			t.Errorf("%s: subtitles %+v, want one %s text track in French", name, info.Subtitles, tc.subtitle)
		}
	}

	notMedia := filepath.Join(dir, "notes.txt")
	os.WriteFile(notMedia, []byte("not a video"), 0o644)
	if _, err := Probe(ctx, "ffprobe", notMedia); err == nil {
		t.Error("probing a text file succeeded")
	}
	if _, err := Probe(ctx, "no-such-ffprobe", mp4); !errors.Is(err, ErrNoFFprobe) {
		t.Errorf("a missing ffprobe: %v, want ErrNoFFprobe", err)
	}
}

func TestCodecStrings(t *testing.T) {
	for _, tc := range []struct {
		codec, profile string
		level, depth   int
		want           string
	}{
		{"h264", "High", 31, 8, "avc1.64001f"},
		{"h264", "Main", 40, 8, "avc1.4d0028"},
		{"h264", "Constrained Baseline", 30, 8, "avc1.42e01e"},
		{"h264", "High 10", 51, 10, "avc1.6e0033"},
		{"hevc", "Main", 93, 8, "hvc1.1.6.L93.B0"},
		{"hevc", "Main 10", 120, 10, "hvc1.2.4.L120.B0"},
		{"vp9", "Profile 0", 0, 8, "vp09.00.10.08"},
		{"av1", "Main", 0, 10, "av01.0.04M.10"},
		{"theora", "", 0, 8, ""},
	} {
		if got := videoCodecString(tc.codec, tc.profile, tc.level, tc.depth, ""); got != tc.want {
			t.Errorf("%s %s level %d: %q, want %q", tc.codec, tc.profile, tc.level, got, tc.want)
		}
	}
	for codec, want := range map[string]string{"aac": "mp4a.40.2", "ac3": "ac-3", "eac3": "ec-3", "dts": "dtsc", "opus": "opus", "mp3": "mp4a.6b", "pcm_s16le": ""} {
		if got := audioCodecString(codec, ""); got != want {
			t.Errorf("%s: %q, want %q", codec, got, want)
		}
	}
	if got := audioCodecString("aac", "HE-AAC"); got != "mp4a.40.5" {
		t.Errorf("HE-AAC: %q", got)
	}
}
