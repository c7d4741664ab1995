package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserHomePageAddsAndPlays does what a new user does: opens the home page, pastes
// something wrong and reads why, pastes the magnet of a native-only swarm, lands on the watch
// page and sees it play; back home, the torrent is listed.
func TestBrowserHomePageAddsAndPlays(t *testing.T) {
	path := testMedia(t, "test-h264.mp4")
	seeder := seedFile(t, path, 64<<10)
	ih := seeder.Torrent.InfoHash().HexString()
	base := startGateway(t, nil).URL
	b := startBrowser(t, browserOptions{name: "home"})

	b.navigate(base + "/")
	waitText(t, b, "#torrents", "None yet.")

	submit := func(text string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer cancel()
		var cleared bool
		err := b.eval(0, `(() => { const el = document.getElementById("source"); el.value = ""; el.focus(); return true })()`, &cleared)
		if err == nil {
			err = chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#source"), text))
		}
		if err == nil {
			err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#add button[type="submit"]`)))
		}
		if err != nil {
			t.Fatalf("typing %q and submitting: %v", text, err)
		}
	}

	submit("not a magnet")
	waitText(t, b, "#error", "infohash")

	submit(seeder.Magnet())
	v := b.waitView(45*time.Second, nil, "the watch page plays", func(v pageView) (bool, string) {
		var loc string
		if err := b.eval(0, "location.pathname", &loc); err != nil || loc != "/watch/"+ih {
			return false, fmt.Sprintf("at %q (%v)", loc, err)
		}
		return playingCond(t)(v)
	})
	if v.SG.InfoHash != ih || v.SG.Mode != "webtorrent" {
		t.Errorf("watch page: %v", v)
	}

	b.navigate(base + "/")
	waitText(t, b, "#torrents", filepath.Base(path))
}

// waitText waits until the element's text contains want.
func waitText(t *testing.T, b *browser, selector, want string) {
	t.Helper()
	waitUntil(t, 15*time.Second, selector+" says "+want, func() (bool, string) {
		var got string
		if err := b.eval(0, fmt.Sprintf("document.querySelector(%q)?.textContent ?? ''", selector), &got); err != nil {
			return false, err.Error()
		}
		return strings.Contains(got, want), fmt.Sprintf("it says %q", got)
	})
}
