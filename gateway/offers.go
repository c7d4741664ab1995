package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmgate/swarmgate/bridge"
	"github.com/swarmgate/swarmgate/registry"
	"github.com/swarmgate/swarmgate/signaling"
)

// The gateway reaches browsers that already have a torrent's data.
//
// Browsers offer only when they announce, and a browser seeding a file announces once per
// interval (120 s): a gateway that only answered offers would wait that long for a torrent a
// browser already holds. So when the gateway needs data for a torrent — no metadata yet, or
// viewers and pieces missing — and its tracker's swarm for it holds browsers that have some
// (they announced left 0, or a known left below the length; before metadata any known left,
// since a client knows left only once it has the metadata), the gateway makes offers of its own
// through the bridge and sends them through the tracker. The answered channel is parked by the
// bridge and dialled by anacrolix (onDialable), so it becomes a peer conn like an answered one.
//
// Bounded: a few offers per torrent and in all at a time, an unanswered offer is dropped after
// offerTimeout, a browser is offered to again only after reofferAfter, never while a
// PeerConnection to it is live (either direction, pending or open), and the bridge's
// --max-webrtc-peers and per-torrent limits hold. The tracker knows nothing of this: it hands
// over what browsers announced (SwarmPeers, PeerAnnounced) and relays offers and answers.

const (
	// offersPerTorrent is how many of its own offers the gateway has in flight per torrent.
	offersPerTorrent = 3
	// offersInFlight bounds them over all torrents.
	offersInFlight = 16
	// offerTimeout drops an offer that got no answer; webtorrent itself drops its own after 50 s.
	offerTimeout = 30 * time.Second
	// reofferAfter is how long a browser is left alone after an offer, answered or not.
	reofferAfter = 60 * time.Second
	// offerScanEvery is how often torrents that need data are looked at again (viewers come, a
	// conn closes, a browser's time since the last offer is up).
	offerScanEvery = time.Second
)

// offerer keeps the gateway's own offers to browsers within their bounds.
type offerer struct {
	g      *Gateway
	wake   chan struct{}
	ctx    context.Context // ends when the gateway stops: cancels offers in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup // offers in flight

	mu       sync.Mutex
	closed   bool
	inFlight map[metainfo.Hash]int
	total    int
	offered  map[bridge.PeerMeta]time.Time // when each browser was last offered to
	// timeout and reoffer are offerTimeout and reofferAfter; tests change them.
	timeout, reoffer time.Duration
}

func newOfferer(g *Gateway) *offerer {
	ctx, cancel := context.WithCancel(context.Background())
	return &offerer{
		g:        g,
		wake:     make(chan struct{}, 1),
		timeout:  offerTimeout,
		reoffer:  reofferAfter,
		ctx:      ctx,
		cancel:   cancel,
		inFlight: make(map[metainfo.Hash]int),
		offered:  make(map[bridge.PeerMeta]time.Time),
	}
}

// wakeUp asks for a scan now (a torrent was added). It never blocks.
func (o *offerer) wakeUp() {
	if o == nil {
		return
	}
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// run scans until the gateway stops, then cancels the offers in flight and waits for them. It
// runs in g.wg, so Close waits for it before closing the bridge and the torrent client.
func (o *offerer) run() {
	defer o.g.wg.Done()
	tick := time.NewTicker(offerScanEvery)
	defer tick.Stop()
	for {
		select {
		case <-o.g.stop:
			o.mu.Lock()
			o.closed = true
			o.mu.Unlock()
			o.cancel()
			o.wg.Wait()
			return
		case <-o.wake:
		case <-tick.C:
		}
		o.scan(time.Now())
	}
}

// scan offers to the browsers worth it in every torrent that needs data.
func (o *offerer) scan(now time.Time) {
	o.mu.Lock()
	for m, at := range o.offered {
		if now.Sub(at) >= o.reoffer {
			delete(o.offered, m)
		}
	}
	o.mu.Unlock()
	for _, e := range o.g.torrents.List() {
		if !o.needsData(e, now) {
			continue
		}
		for _, p := range o.g.tracker.SwarmPeers(signaling.ID(e.Torrent().InfoHash())) {
			if !o.offer(e, p, now) {
				break
			}
		}
	}
}

// peerAnnounced offers at once to a browser that just announced, when it is worth it.
func (o *offerer) peerAnnounced(infoHash signaling.ID, p signaling.PeerState) {
	e, ok := o.g.torrents.Get(metainfo.Hash(infoHash))
	if !ok {
		return
	}
	now := time.Now()
	if o.needsData(e, now) {
		o.offer(e, p, now)
	}
}

// needsData: no metadata yet, or someone watches and pieces are missing. A torrent nobody
// watches fetches no pieces, so browsers' data is no use to it then.
func (o *offerer) needsData(e *registry.Entry, now time.Time) bool {
	if !registry.HasInfo(e.Torrent()) {
		return true
	}
	return !e.Torrent().Complete().Bool() && e.Watched(now)
}

// hasData says whether a browser has something the torrent lacks, by its last announce.
func hasData(e *registry.Entry, p signaling.PeerState) bool {
	if p.Seeder {
		return true
	}
	if p.Left < 0 {
		return false // no metadata either
	}
	if !registry.HasInfo(e.Torrent()) {
		return true // it has the metadata
	}
	return p.Left < e.Torrent().Length()
}

// offer starts an offer to browser p of e's swarm if p is worth one and the bounds allow it. It
// never blocks (it runs on tracker socket readers too). It reports false when no further offer
// for this torrent can start now, so a scan moves on to the next torrent.
func (o *offerer) offer(e *registry.Entry, p signaling.PeerState, now time.Time) bool {
	ih := e.Torrent().InfoHash()
	meta := bridge.PeerMeta{InfoHash: ih, PeerID: p.ID}
	if !hasData(e, p) || o.g.bridge.HasPeer(meta) {
		return true
	}
	if o.g.bridge.Room(ih) != nil {
		return false // --max-webrtc-peers or the per-torrent limit: browsers that offer get the room
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case o.closed:
		return false
	case o.total >= offersInFlight || o.inFlight[ih] >= offersPerTorrent:
		return false
	}
	if at, ok := o.offered[meta]; ok && now.Sub(at) < o.reoffer {
		return true
	}
	o.offered[meta] = now
	o.inFlight[ih]++
	o.total++
	timeout := o.timeout
	o.wg.Go(func() {
		defer o.done(ih)
		o.connect(meta, timeout)
	})
	return true
}

func (o *offerer) done(ih metainfo.Hash) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.inFlight[ih]--; o.inFlight[ih] <= 0 {
		delete(o.inFlight, ih)
	}
	o.total--
}

// connect makes one offer, sends it through the tracker and applies the answer. The channel then
// opens on its own and reaches anacrolix through onDialable.
func (o *offerer) connect(meta bridge.PeerMeta, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(o.ctx, timeout)
	defer cancel()
	log := o.g.log.With("infohash", metainfo.Hash(meta.InfoHash).HexString(), "peer", signaling.ID(meta.PeerID))
	po, err := o.g.bridge.Offer(ctx, meta)
	if err != nil {
		log.Debug("no offer to a browser", "err", err)
		return
	}
	answer, err := o.g.tracker.SendOffer(ctx, signaling.ID(meta.InfoHash), signaling.ID(meta.PeerID), po.SDP())
	if err != nil {
		_ = po.Close()
		if errors.Is(err, context.DeadlineExceeded) {
			err = signaling.ErrOfferTimeout
		}
		log.Debug("browser did not answer the gateway's offer", "err", err)
		return
	}
	if err := po.Accept(answer); err != nil {
		log.Debug("browser's answer not applied", "err", err)
		return
	}
	log.Debug("browser answered the gateway's offer")
}

// PeerAnnounced lets the gateway offer to a browser as soon as it announces (signaling.PeerWatcher).
func (p localPeer) PeerAnnounced(infoHash signaling.ID, s signaling.PeerState) {
	p.g.offers.peerAnnounced(infoHash, s)
}
