package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBrowserMessages: where the page cannot play, it says why in words a viewer can act on, and
// offers the stream URL where an external player could still play it. Each case runs in a real
// page; the page must settle in state "error" with the message expected.
func TestBrowserMessages(t *testing.T) {
	base := startGateway(t, nil).URL
	b := startBrowser(t, browserOptions{name: "messages"})

	// One torrent with a text file only, one with a video in a container Chromium does not play.
	dir := t.TempDir()
	notes := filepath.Join(dir, "notes", "readme.txt")
	if err := os.MkdirAll(filepath.Dir(notes), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(notes, []byte(strings.Repeat("no video here\n", 4000)), 0o644); err != nil {
		t.Fatal(err)
	}
	avi := filepath.Join(dir, "avi", "clip.avi")
	makeAVI(t, avi)
	text := addMagnet(t, base, seedFile(t, filepath.Dir(notes), 16<<10).Magnet())
	video := addMagnet(t, base, seedFile(t, filepath.Dir(avi), 16<<10).Magnet())
	fetchMetainfo(t, base, text.InfoHash)
	fetchMetainfo(t, base, video.InfoHash)

	// A torrent the gateway does not hold gets a page that says so (404), no player.
	for _, tc := range []struct {
		name, url string
		want      []string // all in the page's text
	}{
		{"unknown torrent", base + "/watch/" + strings.Repeat("ab", 20), []string{"Unknown torrent", strings.Repeat("ab", 20), "Add it by its infohash"}},
		{"not an infohash", base + "/watch/nonsense", []string{"Unknown torrent", "40-hex"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.navigate(tc.url)
			waitText(t, b, "body", tc.want[0])
			var text string
			if err := b.eval(0, "document.body.innerText", &text); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("page says %q, lacks %q", text, w)
				}
			}
		})
	}

	for _, tc := range []struct {
		name, url string
		want      []string // all in the page's message
	}{
		{"no playable file", base + "/watch/" + text.InfoHash, []string{"no playable file"}},
		{"file index out of range", base + "/watch/" + text.InfoHash + "?file=7", []string{"has no file 7"}},
		{"a file that is not video", base + "/watch/" + text.InfoHash + "?file=0", []string{"is not video or audio", "/stream/" + text.InfoHash + "/0"}},
		{"codec the browser cannot play", base + "/watch/" + video.InfoHash, []string{"cannot play", "clip.avi", "VLC", "/stream/" + video.InfoHash + "/0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.navigate(tc.url)
			v := b.waitView(45*time.Second, nil, "page reports an error", func(v pageView) (bool, string) {
				if v.SG == nil {
					return false, "page has no window.swarmgate"
				}
				if v.SG.State == "playing" {
					t.Fatalf("page plays where it should not: %v", v)
				}
				return v.SG.State == "error", fmt.Sprintf("state %q, message %q", v.SG.State, v.SG.Message)
			})
			t.Logf("message: %q", v.SG.Message)
			for _, w := range tc.want {
				if !strings.Contains(v.SG.Message, w) {
					t.Errorf("message %q lacks %q", v.SG.Message, w)
				}
			}
			// What window.swarmgate says is what the viewer reads.
			if !strings.Contains(v.Message, tc.want[0]) {
				t.Errorf("#message shows %q, want it to say %q", v.Message, tc.want[0])
			}
		})
	}
}

// makeAVI writes two seconds of MPEG-4 Part 2 video in an AVI container: a file VLC plays and
// Chromium does not.
func makeAVI(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		missingTool(t, "ffmpeg", "apt-get install ffmpeg")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2", "-c:v", "mpeg4", "-q:v", "5", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
}
