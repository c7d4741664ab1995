package e2e

import (
	"context"
	"crypto/sha256"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserSharesAFile: a file only a browser has goes to the gateway from the home page
// (instant.io style): the page seeds it with webtorrent into the gateway's tracker, the gateway
// fetches it whole from the page over WebRTC, and once the page says so it may close; a second
// browser then plays it, from the gateway alone, byte for byte the file.
func TestBrowserSharesAFile(t *testing.T) {
	path := testMedia(t, "test-h264.mp4")
	base := startGateway(t, nil).URL
	sharer := startBrowser(t, browserOptions{name: "sharer"})
	sharer.navigate(base + "/")
	ctx, cancel := context.WithTimeout(sharer.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.CSS("#share-file"), []string{path})); err != nil {
		t.Fatalf("choosing the file: %v", err)
	}
	waitUntil(t, 90*time.Second, "the page says the gateway holds the file", func() (bool, string) {
		var s struct {
			Done   bool   `json:"done"`
			Status string `json:"status"`
			Error  string `json:"error"`
		}
		sharer.eval(0, `({done: !document.getElementById("share-done").hidden, status: document.getElementById("share-status").textContent, error: document.getElementById("error").textContent})`, &s)
		if s.Error != "" {
			t.Fatalf("the page says: %s", s.Error)
		}
		return s.Done, s.Status
	})
	var watch string
	if err := sharer.eval(0, `document.getElementById("share-watch").href`, &watch); err != nil {
		t.Fatal(err)
	}
	sharer.stop() // the page closes: from now on the gateway alone has the file

	ih := watch[len(watch)-40:]
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := streamSHA256(t, base+"/stream/"+ih+"/0"); got != sha256.Sum256(want) {
		t.Fatal("the gateway's copy differs from the shared file")
	}
	viewer := startBrowser(t, browserOptions{name: "viewer"})
	viewer.navigate(watch)
	v := viewer.waitView(45*time.Second, nil, "a second browser plays the shared file", playingCond(t))
	t.Logf("viewer: %v", v)
}
