package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/swarmgate/swarmgate/gateway"
)

// TestFirstHourJourney walks what a new user does in their first hour, in one Chromium, against a
// gateway with an admin token that also carries a live broadcast: the home page lists the live
// stream; pasting a magnet asks for the admin token once, then lands on the watch page, which
// plays; Share copies the watch link and Embed the code, which plays on a page of another origin;
// the live stream plays from the home page's link; Delete removes the torrent.
func TestFirstHourJourney(t *testing.T) {
	const token = "journey-admin-token-0123456789"
	ls := startLive(t, liveOptions{seconds: 120, gateway: func(c *gateway.Config) { c.AdminToken = token }})
	base := ls.base
	seeder := seedFile(t, testMedia(t, "test-h264.mp4"), 64<<10)
	ih := seeder.Torrent.InfoHash().HexString()
	b := startBrowser(t, browserOptions{name: "journey"})
	click := func(selector string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(selector))); err != nil {
			t.Fatalf("click %s: %v", selector, err)
		}
	}
	typeInto := func(selector, text string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(selector), text)); err != nil {
			t.Fatalf("typing into %s: %v", selector, err)
		}
	}

	// Home: the live stream is listed beside the (empty) torrents.
	b.navigate(base + "/")
	waitText(t, b, "#torrents", "None yet.")
	waitText(t, b, "#live", "watching in browsers")

	// Add by magnet: the gateway wants its token; the page asks once, then goes on by itself.
	typeInto("#source", seeder.Magnet())
	click(`#add button[type="submit"]`)
	waitText(t, b, "#token-question", "admin token")
	typeInto("#token", token)
	click(`#token-form button[type="submit"]`)
	b.waitView(60*time.Second, nil, "the watch page plays", func(v pageView) (bool, string) {
		var loc string
		if err := b.eval(0, "location.pathname", &loc); err != nil || loc != "/watch/"+ih {
			return false, fmt.Sprintf("at %q (%v)", loc, err)
		}
		return playingCond(t)(v)
	})

	// Share gives the watch link; Embed the code, which plays on another site.
	click("#share")
	var link string
	waitUntil(t, 10*time.Second, "the share box holds the link", func() (bool, string) {
		b.eval(0, `document.getElementById("code").value`, &link)
		return strings.HasPrefix(link, base+"/watch/"+ih), link
	})
	click("#embed")
	var code string
	waitUntil(t, 10*time.Second, "the share box holds the embed code", func() (bool, string) {
		b.eval(0, `document.getElementById("code").value`, &code)
		return strings.Contains(code, "<iframe"), code
	})
	iframe := regexp.MustCompile(`<iframe[^>]*></iframe>`).FindString(code)
	if iframe == "" || !strings.Contains(iframe, base+"/embed/"+ih) {
		t.Fatalf("embed code %q has no iframe of the embed page", code)
	}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "<!doctype html><meta charset=\"utf-8\"><title>a blog</title><h1>My post</h1>\n%s\n", iframe)
	}))
	t.Cleanup(site.Close)
	b.navigate(site.URL + "/")
	b.waitView(60*time.Second, func() runtime.ExecutionContextID { return b.frameContext(base) }, "the embed plays on another site", playingCond(t))

	// The live stream, from the home page's link.
	b.navigate(base + "/")
	waitText(t, b, "#live", "watching in browsers")
	click("#live a")
	b.waitLive(60*time.Second, "the live page plays", livePlaying)

	// Delete, from the home page (the token is remembered; the confirmation is accepted).
	b.navigate(base + "/")
	waitText(t, b, "#torrents", "test-h264.mp4")
	var ok bool
	if err := b.eval(0, `(() => { window.confirm = () => true; return true })()`, &ok); err != nil {
		t.Fatal(err)
	}
	click("#torrents .delete")
	waitText(t, b, "#torrents", "None yet.")
	res, err := http.Get(base + "/api/torrents/" + ih)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("after Delete the API answers %d for the torrent", res.StatusCode)
	}
}
