package peertest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"github.com/swarmgate/swarmgate/bridge"
	"github.com/swarmgate/swarmgate/internal/trackerclient"
	"github.com/swarmgate/swarmgate/signaling"
)

// PeerOptions configure a WebRTCPeer.
type PeerOptions struct {
	// Dir holds the peer's downloads (anacrolix mode only).
	Dir string
	// TrackerURL is the websocket tracker (the gateway's /announce).
	TrackerURL string
	// AnnounceEvery is the re-announce period while the peer still needs data (default 1 s).
	AnnounceEvery time.Duration
	// Offers is how many offers each announce carries while the peer needs data (default 2).
	Offers int
	// Raw peers have no torrent client: Connect hands their conns to the caller, who speaks
	// BitTorrent itself (WireDownload).
	Raw bool
	Log *slog.Logger
}

// WebRTCPeer joins swarms the way a browser does: through the websocket tracker, with offers, over
// WebRTC data channels only (no TCP, no uTP, no DHT). Unless Raw, an anacrolix client speaks
// BitTorrent over the channels.
type WebRTCPeer struct {
	Client  *torrent.Client // nil when Raw
	Bridge  *bridge.Bridge
	tracker *trackerclient.Client
	peerID  signaling.ID
	opts    PeerOptions
	log     *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	pending  map[signaling.ID]*bridge.PendingOffer
	dialable chan string // Raw mode: addresses of opened outgoing channels
}

// NewWebRTCPeer starts a peer connected to the tracker.
func NewWebRTCPeer(ctx context.Context, opts PeerOptions) (*WebRTCPeer, error) {
	if opts.AnnounceEvery == 0 {
		opts.AnnounceEvery = time.Second
	}
	if opts.Offers == 0 {
		opts.Offers = 2
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &WebRTCPeer{
		opts:     opts,
		log:      log.With("component", "webrtc-peer"),
		pending:  make(map[signaling.ID]*bridge.PendingOffer),
		dialable: make(chan string, 16),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()
	if _, err := rand.Read(p.peerID[:]); err != nil {
		return nil, err
	}
	if !opts.Raw {
		cfg := LoopbackClientConfig(opts.Dir)
		cfg.DefaultStorage = storage.NewFileOpts(storage.NewFileClientOpts{
			ClientBaseDir:   opts.Dir,
			PieceCompletion: storage.NewMapPieceCompletion(),
		})
		// Only data channels: no TCP, and the gateway's webseed must not carry what the test
		// says WebRTC did.
		cfg.DisableTCP = true
		cfg.DisableWebseeds = true
		cfg.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{Preferred: false, RequirePreferred: true}
		cfg.PeerID = string(p.peerID[:])
		cfg.Slogger = log.With("component", "torrent")
		cl, err := torrent.NewClient(cfg)
		if err != nil {
			return nil, err
		}
		p.Client = cl
	}
	bcfg := bridge.DefaultConfig()
	bcfg.LoopbackOnly = true
	bcfg.OnDialable = p.onDialable
	var err error
	p.Bridge, err = bridge.New(bcfg, log)
	if err != nil {
		return nil, err
	}
	if p.Client != nil {
		p.Client.AddListener(p.Bridge)
		p.Client.AddDialer(p.Bridge)
	}
	p.tracker, err = trackerclient.Dial(ctx, opts.TrackerURL, p.peerID, trackerclient.Handlers{
		Offer: func(ctx context.Context, o signaling.Offer) (string, error) {
			if opts.Raw {
				return "", errors.New("raw peers do not answer")
			}
			return p.Bridge.Answer(ctx, bridge.PeerMeta{InfoHash: o.InfoHash, PeerID: o.PeerID}, o.SDP)
		},
		Answer: p.onAnswer,
		Failure: func(ih signaling.ID, reason string) {
			p.log.Warn("tracker failure", "infohash", ih, "reason", reason)
		},
	}, log)
	if err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

// PeerID is the peer's id in the tracker and in BitTorrent handshakes.
func (p *WebRTCPeer) PeerID() [20]byte { return p.peerID }

func (p *WebRTCPeer) onDialable(meta bridge.PeerMeta, addr string) {
	if p.opts.Raw {
		select {
		case p.dialable <- addr:
		default:
			p.log.Warn("dropping an opened channel nobody waits for")
		}
		return
	}
	if t, ok := p.Client.Torrent(metainfo.Hash(meta.InfoHash)); ok {
		t.AddPeers([]torrent.PeerInfo{{Addr: bridge.Addr(addr), Id: meta.PeerID, Source: "webrtc"}})
	}
}

func (p *WebRTCPeer) onAnswer(_, _, offerID signaling.ID, sdp string) {
	p.mu.Lock()
	po, ok := p.pending[offerID]
	delete(p.pending, offerID)
	p.mu.Unlock()
	if !ok {
		return
	}
	if err := po.Accept(sdp); err != nil {
		p.log.Warn("answer not accepted", "err", err)
	}
}

// announce sends one announce with n fresh offers.
func (p *WebRTCPeer) announce(ih signaling.ID, event string, left int64, n int) error {
	params := trackerclient.AnnounceParams{InfoHash: ih, Event: event, Left: left, NumWant: n}
	for range n {
		po, err := p.Bridge.Offer(p.ctx, bridge.PeerMeta{InfoHash: ih})
		if err != nil {
			return err
		}
		var id signaling.ID
		rand.Read(id[:])
		p.mu.Lock()
		p.pending[id] = po
		p.mu.Unlock()
		// An offer nobody answers is abandoned, as webtorrent does after 50 s.
		time.AfterFunc(10*time.Second, func() {
			p.mu.Lock()
			_, still := p.pending[id]
			delete(p.pending, id)
			p.mu.Unlock()
			if still {
				po.Close()
			}
		})
		params.Offers = append(params.Offers, trackerclient.Offer{OfferID: id, SDP: po.SDP()})
	}
	return p.tracker.Announce(p.ctx, params)
}

// Join adds a torrent and takes part in its swarm: announcing with offers while it needs data,
// and staying announced (answering others' offers) once complete.
func (p *WebRTCPeer) Join(mi *metainfo.MetaInfo) (*torrent.Torrent, error) {
	if p.Client == nil {
		return nil, errors.New("raw peers cannot join; use Connect")
	}
	t, err := p.Client.AddTorrent(mi)
	if err != nil {
		return nil, err
	}
	t.DownloadAll()
	ih := signaling.ID(t.InfoHash())
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(p.opts.AnnounceEvery)
		defer tick.Stop()
		event := "started"
		for {
			left := int64(-1)
			if info := t.Info(); info != nil {
				left = t.Length() - t.BytesCompleted()
			}
			n := p.opts.Offers
			if left == 0 || len(t.PeerConns()) >= 4 {
				n = 0
			}
			if err := p.announce(ih, event, max(left, 0), n); err != nil && p.ctx.Err() == nil {
				p.log.Warn("announce", "err", err)
			}
			event = ""
			select {
			case <-p.ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return t, nil
}

// Connect (Raw peers) announces offers for infoHash until one is answered and its channel opens,
// and returns the conn. The caller speaks BitTorrent first over it.
func (p *WebRTCPeer) Connect(ctx context.Context, infoHash [20]byte, left int64) (net.Conn, error) {
	if !p.opts.Raw {
		return nil, errors.New("Connect is for raw peers")
	}
	tick := time.NewTicker(p.opts.AnnounceEvery * 3)
	defer tick.Stop()
	if err := p.announce(infoHash, "started", left, 1); err != nil {
		return nil, err
	}
	for {
		select {
		case addr := <-p.dialable:
			return p.Bridge.Dial(ctx, addr)
		case <-tick.C:
			if err := p.announce(infoHash, "", left, 1); err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("no data channel opened: %w", ctx.Err())
		}
	}
}

// Close stops the peer and everything it started.
func (p *WebRTCPeer) Close() {
	p.cancel()
	if p.tracker != nil {
		p.tracker.Close()
	}
	p.wg.Wait()
	p.mu.Lock()
	for id, po := range p.pending {
		po.Close()
		delete(p.pending, id)
	}
	p.mu.Unlock()
	if p.Client != nil {
		p.Client.Close()
	}
	if p.Bridge != nil {
		p.Bridge.Close()
	}
}
