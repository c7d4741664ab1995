package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/gateway"
)

// makeFilm has ffmpeg make a test film: seconds long, keyframes every 2 s, with the codecs given.
func makeFilm(t testing.TB, name string, seconds int, size string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		missingTool(t, "ffmpeg", "apt-get install ffmpeg")
	}
	path := filepath.Join(t.TempDir(), name)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	all := append([]string{"-v", "error", "-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", fmt.Sprint(seconds)}, args...)
	if b, err := exec.CommandContext(ctx, "ffmpeg", append(all, path)...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	return path
}

// hlsPage is what a watch page says of itself (window.swarmgate) and its video.
type hlsPage struct {
	SG struct {
		State   string `json:"state"`
		Mode    string `json:"mode"`
		Message string `json:"message"`
		Plan    *struct {
			How string `json:"how"`
			HLS string `json:"hls"`
			Why string `json:"why"`
		} `json:"plan"`
		HLS *struct {
			Variant  string `json:"variant"`
			Stream   string `json:"stream"`
			Playlist string `json:"playlist"`
		} `json:"hls"`
		Stats struct {
			FromGateway  float64 `json:"fromGateway"`
			FromBrowsers float64 `json:"fromBrowsers"`
			Uploaded     float64 `json:"uploaded"`
			Verified     float64 `json:"verified"`
			Rejected     float64 `json:"rejected"`
		} `json:"stats"`
	} `json:"sg"`
	CurrentTime float64 `json:"currentTime"`
	Duration    float64 `json:"duration"`
	Src         string  `json:"src"`
}

func (p hlsPage) String() string {
	b, _ := json.Marshal(p)
	return string(b)
}

func (b *browser) waitPage(within time.Duration, what string, cond func(hlsPage) bool) hlsPage {
	b.t.Helper()
	var p hlsPage
	waitUntil(b.t, within, b.name+": "+what, func() (bool, string) {
		p = hlsPage{}
		if err := b.eval(0, `(() => { const v = document.getElementById("player"); return {sg: window.swarmgate, currentTime: v.currentTime, duration: v.duration || 0, src: v.currentSrc || v.src} })()`, &p); err != nil {
			return false, err.Error()
		}
		if p.SG.State == "error" {
			b.t.Fatalf("%s: the page failed: %s", b.name, p)
		}
		return cond(p), p.String()
	})
	return p
}

// seedFilm seeds a film natively and adds it to the gateway at base by magnet; it returns the
// watch page's URL for it.
func seedFilm(t testing.TB, base, path string) (ih, watch string) {
	seeder := seedFile(t, path, 64<<10)
	return addFilm(t, base, seeder, filepath.Base(path))
}

// addFilm adds seeder's film to the gateway at base by magnet and waits until the gateway has
// probed it; it returns the watch page's URL for it.
func addFilm(t testing.TB, base string, seeder *fileSeeder, name string) (ih, watch string) {
	t.Helper()
	v := addMagnet(t, base, seeder.Magnet())
	fetchMetainfo(t, base, v.InfoHash)
	waitProbed(t, base, v.InfoHash)
	return v.InfoHash, base + "/watch/" + v.InfoHash + "?file=0"
}

// waitProbed waits until the gateway has probed file 0 of torrent ih, and returns what the
// probe found (files[0].media.info); a failed probe fails the test.
func waitProbed(t testing.TB, base, ih string) json.RawMessage {
	t.Helper()
	var info json.RawMessage
	waitUntil(t, 60*time.Second, "the gateway's probe of "+ih, func() (bool, string) {
		res, err := http.Get(base + "/api/torrents/" + ih)
		if err != nil {
			return false, err.Error()
		}
		defer res.Body.Close()
		var v struct {
			Files []struct {
				Media *struct {
					State string          `json:"state"`
					Info  json.RawMessage `json:"info"`
					Error string          `json:"error"`
				} `json:"media"`
			} `json:"files"`
		}
		if json.NewDecoder(res.Body).Decode(&v) != nil || len(v.Files) == 0 || v.Files[0].Media == nil {
			return false, "no media view"
		}
		md := v.Files[0].Media
		if md.State == "failed" {
			t.Fatalf("probe failed: %s", md.Error)
		}
		info = md.Info
		return md.State == "done", md.State
	})
	return info
}

// playsAndSeeks waits for the page to play, seeks to 75 % and waits for it to play on there.
func playsAndSeeks(t *testing.T, b *browser) hlsPage {
	t.Helper()
	p := b.waitPage(90*time.Second, "playing", func(p hlsPage) bool { return p.SG.State == "playing" && p.CurrentTime > 0.5 })
	target := p.Duration * 0.75
	if err := b.eval(0, fmt.Sprintf(`document.getElementById("player").currentTime = %f`, target), nil); err != nil {
		t.Fatal(err)
	}
	return b.waitPage(90*time.Second, "playing on after a seek to 75 %", func(p hlsPage) bool {
		return p.CurrentTime > target+1 && p.SG.State == "playing"
	})
}

// TestEveryVideoPlaysInChromium: real files made by ffmpeg, fetched by the gateway from a native
// seeder, play in Chromium the way the page decides — MKV H.264 + AC-3 remuxed (the page made
// to believe it decodes no AC-3), MKV HEVC + E-AC-3 transcoded (made to believe it decodes no
// HEVC), AVI MPEG-4 part 2 + MP3 transcoded (Chromium refuses AVI), MP4 H.264 + AAC direct over
// P2P pieces — and each plays on after a seek to 75 %. A browser without MSE that plays HLS
// itself (iPhone) gets the playlist in its video element.
func TestEveryVideoPlaysInChromium(t *testing.T) {
	base := startGateway(t, func(c *gateway.Config) { c.FFprobe, c.FFmpeg = "ffprobe", "ffmpeg" }).URL
	b := startBrowser(t, browserOptions{name: "viewer"})
	for _, c := range []struct {
		name, caps, how, mode string
		film                  func(t *testing.T) string
	}{
		{"mkv-h264-ac3", "-ac-3", "remux", "hls", func(t *testing.T) string {
			return makeFilm(t, "film.mkv", 30, "320x180", "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "ac3")
		}},
		{"mkv-hevc-eac3", "-hvc1,-hev1,-ec-3", "transcode", "hls", func(t *testing.T) string {
			return makeFilm(t, "film.mkv", 12, "160x90", "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-c:a", "eac3")
		}},
		{"avi-mpeg4-mp3", "", "transcode", "hls", func(t *testing.T) string {
			return makeFilm(t, "film.avi", 20, "320x180", "-c:v", "mpeg4", "-q:v", "5", "-c:a", "libmp3lame")
		}},
		{"mp4-h264-aac", "", "direct", "webtorrent", func(t *testing.T) string {
			return makeFilm(t, "film.mp4", 20, "320x180", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, watch := seedFilm(t, base, c.film(t))
			if c.caps != "" {
				watch += "&caps=" + c.caps
			}
			b.navigate(watch)
			p := b.waitPage(30*time.Second, "its plan", func(p hlsPage) bool { return p.SG.Plan != nil })
			if p.SG.Plan.How != c.how {
				t.Fatalf("plan %+v, want %s", *p.SG.Plan, c.how)
			}
			p = playsAndSeeks(t, b)
			if p.SG.Mode != c.mode {
				t.Errorf("mode %q, want %q: %s", p.SG.Mode, c.mode, p)
			}
			if c.how != "direct" && (p.SG.HLS == nil || !strings.HasPrefix(p.SG.HLS.Variant, c.how)) {
				t.Errorf("HLS variant: %s", p)
			}
			t.Logf("%s: %s", c.name, p)
		})
	}

	t.Run("subtitles", func(t *testing.T) {
		dir := t.TempDir()
		srt := filepath.Join(dir, "en.srt")
		if err := os.WriteFile(srt, []byte("1\n00:00:00,500 --> 00:00:09,000\nHello from the subtitles\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		film := filepath.Join(dir, "subs.mkv")
		if b, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
			"-i", srt, "-t", "10", "-map", "0:v", "-map", "1:a", "-map", "2:s", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
			"-c:a", "aac", "-c:s", "srt", "-metadata:s:s:0", "language=eng", film).CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg: %v: %s", err, b)
		}
		_, watch := seedFilm(t, base, film)
		b.navigate(watch)
		var tracks []struct {
			Label, Language, Mode string
			Cues                  int
			Text                  string
		}
		waitUntil(t, 60*time.Second, "the subtitle track on, with its cue", func() (bool, string) {
			tracks = nil
			if err := b.eval(0, `Array.from(document.getElementById("player").textTracks, t => ({label: t.label, language: t.language, mode: t.mode, cues: t.cues ? t.cues.length : 0, text: t.cues && t.cues.length ? t.cues[0].text : ""}))`, &tracks); err != nil {
				return false, err.Error()
			}
			return len(tracks) == 1 && tracks[0].Cues == 1, fmt.Sprint(tracks)
		})
		if tracks[0].Language != "en" || tracks[0].Mode != "showing" || tracks[0].Text != "Hello from the subtitles" {
			t.Errorf("subtitle track %+v: want English, showing, the cue's text", tracks[0])
		}
	})

	t.Run("native-hls", func(t *testing.T) {
		_, watch := seedFilm(t, base, makeFilm(t, "film.mkv", 12, "320x180", "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "ac3"))
		b.navigate(watch + "&caps=no-mse,hls,-x-matroska")
		p := b.waitPage(30*time.Second, "the native HLS branch", func(p hlsPage) bool { return p.SG.Mode == "hls-native" })
		if p.SG.Plan.How != "remux" || p.SG.Plan.HLS != "native" || !strings.HasSuffix(p.Src, "/remux-a1/index.m3u8") {
			t.Errorf("native HLS: %s", p)
		}
	})
}

// TestHLSSegmentsSharedBetweenBrowsers: one transcode serves two viewers; the second takes
// segments from the first over WebRTC, each checked against the gateway's signed entry. A
// viewer whose peer forges every byte it uploads refuses them all and plays on from the gateway.
func TestHLSSegmentsSharedBetweenBrowsers(t *testing.T) {
	needDefaultRoute(t)
	base := startGateway(t, func(c *gateway.Config) { c.FFprobe, c.FFmpeg = "ffprobe", "ffmpeg" }).URL
	_, watch := seedFilm(t, base, makeFilm(t, "film.avi", 90, "320x180", "-c:v", "mpeg4", "-q:v", "4", "-c:a", "libmp3lame"))

	share := func(t *testing.T, firstScripts []string, cond func(hlsPage) bool) hlsPage {
		first := startBrowser(t, browserOptions{name: "first", initScripts: firstScripts})
		second := startBrowser(t, browserOptions{name: "second"})
		first.navigate(watch)
		first.waitPage(90*time.Second, "the first viewer buffering 30 s ahead", func(p hlsPage) bool {
			return p.SG.State == "playing" && p.SG.Stats.FromGateway+p.SG.Stats.FromBrowsers > 0 && p.CurrentTime > 1
		})
		second.navigate(watch)
		second.waitPage(120*time.Second, "the second viewer getting segments from the first", cond)
		return second.waitPage(60*time.Second, "the second viewer playing", func(p hlsPage) bool {
			return p.SG.State == "playing" && p.CurrentTime > 2
		})
	}

	t.Run("verified", func(t *testing.T) {
		p := share(t, nil, func(p hlsPage) bool { return p.SG.Stats.FromBrowsers > 0 && p.SG.Stats.Verified > 0 })
		if p.SG.Stats.Rejected != 0 {
			t.Errorf("honest peers, yet %v segments rejected: %s", p.SG.Stats.Rejected, p)
		}
		t.Logf("second viewer: %s", p)
	})
	t.Run("forged", func(t *testing.T) {
		p := share(t, []string{forgeUploadsJS}, func(p hlsPage) bool { return p.SG.Stats.Rejected > 0 })
		if p.SG.Stats.Verified != 0 {
			t.Errorf("every upload of the peer is forged, yet %v verified: %s", p.SG.Stats.Verified, p)
		}
		t.Logf("second viewer: %s", p)
	})
}
