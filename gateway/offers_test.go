package gateway

import (
	"context"
	"crypto/sha256"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmgate/swarmgate/internal/peertest"
	"github.com/swarmgate/swarmgate/internal/trackerclient"
	"github.com/swarmgate/swarmgate/signaling"
)

// A browser (a pion peer with its own torrent client) seeds a file and announces once to the
// gateway's tracker: left 0, no offers, and no other announce for an hour. Only then is the torrent
// added to the gateway, by infohash alone. The gateway must offer to the browser itself and get the
// metadata and every byte over that data channel; answering offers alone, it would wait for the
// browser's next announce.
func TestOfferToSeedingBrowser(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.MetadataWait = 5 * time.Second })
	dir := t.TempDir()
	// The native seeder only writes and hashes the file; it is closed before anyone could learn of it.
	native, err := peertest.NewSeeder(dir, "browser-seeded.bin", 3<<20+777, 64<<10, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	native.Close()
	mi, ih := native.MetaInfo, native.MetaInfo.HashInfoBytes()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	browser, err := peertest.NewWebRTCPeer(ctx, peertest.PeerOptions{
		Dir: dir, TrackerURL: trackerURL(r), AnnounceEvery: time.Hour, Log: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(browser.Close)
	bt, err := browser.Client.AddTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}
	if err := bt.VerifyDataContext(ctx); err != nil {
		t.Fatal(err)
	}
	waitComplete(t, bt, 30*time.Second)
	if _, err := browser.Join(mi); err != nil { // one announce: started, left 0, no offers
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the browser in the gateway's swarm as a seeder", func() bool {
		ps := r.g.tracker.SwarmPeers(signaling.ID(ih))
		return len(ps) == 1 && ps[0].Seeder
	})

	if res := r.postJSON(t, map[string]string{"magnet": "magnet:?xt=urn:btih:" + ih.HexString()}); res.status != http.StatusCreated {
		t.Fatalf("add by infohash: %d %s", res.status, res.body)
	}
	var body []byte
	waitFor(t, 60*time.Second, "the file through /stream", func() bool {
		res := r.get(t, "/stream/"+ih.HexString()+"/0", nil)
		body = res.body
		return res.status == http.StatusOK
	})
	if int64(len(body)) != native.Info.TotalLength() || sha256.Sum256(body) != native.SHA256 {
		t.Fatalf("streamed %d bytes that differ from the browser's %d", len(body), native.Info.TotalLength())
	}
	e, _ := r.g.torrents.Get(ih)
	if b, _ := e.Counts(); b.FromWebRTC < native.Info.TotalLength() {
		t.Errorf("bytes from WebRTC %d, want the whole file (%d): %+v", b.FromWebRTC, native.Info.TotalLength(), b)
	}
	if s := r.g.tracker.Stats(); s.AnswersRelayed < 1 {
		t.Errorf("no answer reached the gateway's offer: %+v", s)
	}
}

// silentBrowser is a tracker client that announces as a seeder and never answers an offer; it
// records the offers it gets.
type silentBrowser struct {
	id     signaling.ID
	c      *trackerclient.Client
	mu     sync.Mutex
	offers int
}

func newSilentBrowser(t *testing.T, r *running, n byte, ih metainfo.Hash, got chan<- signaling.ID) *silentBrowser {
	t.Helper()
	b := &silentBrowser{}
	b.id[0], b.id[19] = 0xb0, n
	c, err := trackerclient.Dial(context.Background(), trackerURL(r), b.id, trackerclient.Handlers{
		Offer: func(ctx context.Context, o signaling.Offer) (string, error) {
			b.mu.Lock()
			b.offers++
			b.mu.Unlock()
			got <- b.id
			<-ctx.Done() // never answers
			return "", ctx.Err()
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.c = c
	t.Cleanup(func() { c.Close() })
	if err := c.Announce(context.Background(), trackerclient.AnnounceParams{InfoHash: signaling.ID(ih), Event: "started", Left: 0}); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *silentBrowser) offerCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.offers
}

func (o *offerer) inFlightFor(ih metainfo.Hash) (int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.inFlight[ih], o.total
}

func (o *offerer) set(timeout, reoffer time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.timeout, o.reoffer = timeout, reoffer
}

// The gateway's own offers stay bounded: a few per torrent at a time, one per browser until
// reofferAfter, none to a browser it has a PeerConnection with; a browser that leaves frees its
// slot, and an unanswered offer is dropped, its PeerConnection closed, after the timeout.
func TestOffersBounded(t *testing.T) {
	r := startGateway(t, nil)
	o := r.g.offers
	o.set(time.Hour, time.Hour)
	ih := mustHash(t, someInfoHash(0x5e))
	got := make(chan signaling.ID, 64)
	browsers := map[signaling.ID]*silentBrowser{}
	for n := range byte(5) {
		b := newSilentBrowser(t, r, n, ih, got)
		browsers[b.id] = b
	}
	waitFor(t, 10*time.Second, "five browsers in the swarm", func() bool { return len(r.g.tracker.SwarmPeers(signaling.ID(ih))) == 5 })

	if _, _, err := r.g.AddInfoHash(ih.HexString()); err != nil {
		t.Fatal(err)
	}
	next := func(what string) signaling.ID {
		t.Helper()
		select {
		case id := <-got:
			return id
		case <-time.After(20 * time.Second):
			t.Fatalf("no offer: %s", what)
		}
		return signaling.ID{}
	}
	offered := map[signaling.ID]bool{}
	for range offersPerTorrent {
		offered[next("first offers")] = true
	}
	// More scans change nothing: the torrent has its offers in flight.
	for range 3 {
		o.scan(time.Now())
	}
	if n, _ := o.inFlightFor(ih); n != offersPerTorrent || len(offered) != offersPerTorrent {
		t.Fatalf("%d offers in flight to %d browsers, want %d", n, len(offered), offersPerTorrent)
	}
	if p := r.g.bridge.Stats().PeerConnections; p != offersPerTorrent {
		t.Fatalf("%d PeerConnections for %d offers", p, offersPerTorrent)
	}

	// One offered browser leaves: its slot goes to one browser not offered to yet.
	for id := range offered {
		browsers[id].c.Close()
		delete(browsers, id)
		break
	}
	id := next("after a browser left")
	if offered[id] {
		t.Fatalf("browser %v offered to twice", id)
	}
	offered[id] = true

	// The other offered browsers leave too, so the last one gets an offer that it never answers:
	// it ends at the timeout, and its PeerConnection with it; the browser is not offered to again
	// within reofferAfter.
	o.set(200*time.Millisecond, time.Hour)
	for id := range offered {
		if b := browsers[id]; b != nil {
			b.c.Close()
			delete(browsers, id)
		}
	}
	last := next("to the last browser")
	if offered[last] || len(browsers) != 1 || browsers[last] == nil {
		t.Fatalf("last offer went to %v; offered before: %v", last, offered)
	}
	waitFor(t, 30*time.Second, "every offer ended", func() bool {
		n, total := o.inFlightFor(ih)
		return n == 0 && total == 0
	})
	waitFor(t, 20*time.Second, "the abandoned PeerConnections closed", func() bool { return r.g.bridge.Stats().PeerConnections == 0 })
	for range 3 {
		o.scan(time.Now())
	}
	if n, _ := o.inFlightFor(ih); n != 0 {
		t.Fatalf("offers again within reofferAfter: %d in flight", n)
	}
	if c := browsers[last].offerCount(); c != 1 {
		t.Errorf("last browser got %d offers, want 1", c)
	}

	// Past reofferAfter they are offered to again.
	o.set(time.Hour, 0)
	o.scan(time.Now())
	if n, _ := o.inFlightFor(ih); n == 0 {
		t.Fatal("no offer once reofferAfter passed")
	}
}
