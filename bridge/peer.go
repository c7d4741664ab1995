package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// peer is one PeerConnection and, once its channel opens, its single Conn.
type peer struct {
	b        *Bridge
	id       uint64
	meta     PeerMeta
	outgoing bool
	log      *slog.Logger

	mu       sync.Mutex
	pc       *webrtc.PeerConnection
	timer    *time.Timer // ConnectTimeout until the channel opens
	grace    *time.Timer // DisconnectedGrace while ICE is disconnected
	graceGen uint64      // tells a grace timer that fired late from the current one
	conn     *Conn
	closing  bool
	closedCh chan struct{} // closed when close has finished
}

func (b *Bridge) newPeer(meta PeerMeta, outgoing bool) (*peer, error) {
	p := &peer{
		b:        b,
		id:       b.nextID.Add(1),
		meta:     meta,
		outgoing: outgoing,
		closedCh: make(chan struct{}),
	}
	p.log = b.log.With("peer", p.id, "outgoing", outgoing)
	if err := b.reserve(p); err != nil {
		return nil, err
	}
	pc, err := b.api.NewPeerConnection(webrtc.Configuration{ICEServers: b.cfg.ICEServers})
	if err != nil {
		b.release(p)
		return nil, fmt.Errorf("bridge: new peer connection: %w", err)
	}
	p.mu.Lock()
	if p.closing { // Bridge.Close ran meanwhile
		p.mu.Unlock()
		_ = pc.Close()
		<-p.closedCh
		return nil, ErrClosed
	}
	p.pc = pc
	// The timer's goroutine is not the bridge's; hop to a tracked one so Close waits for it.
	p.timer = time.AfterFunc(b.cfg.ConnectTimeout, func() { b.spawn(p.connectTimeout) })
	p.mu.Unlock()

	pc.OnICEConnectionStateChange(p.onICEState)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed {
			p.closeAsync()
		}
	})
	return p, nil
}

// onICEState follows ICE. A killed tab sends nothing: ICE noticing the silence is the only sign
// of it. But disconnected (nothing heard for pion's disconnected timeout) is often a brief loss
// that ICE recovers from, so the peer gets DisconnectedGrace to come back before it is closed;
// failed and closed end it at once.
func (p *peer) onICEState(s webrtc.ICEConnectionState) {
	switch s {
	case webrtc.ICEConnectionStateDisconnected:
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closing || p.grace != nil {
			return
		}
		p.log.Debug("ice disconnected, waiting for it to return", "grace", p.b.cfg.DisconnectedGrace)
		p.b.disconnected.Add(1)
		p.graceGen++
		gen := p.graceGen
		// The timer's goroutine is not the bridge's; hop to a tracked one so Close waits for it.
		p.grace = time.AfterFunc(p.b.cfg.DisconnectedGrace, func() { p.b.spawn(func() { p.graceOver(gen) }) })
	case webrtc.ICEConnectionStateConnected, webrtc.ICEConnectionStateCompleted:
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.stopGraceLocked() {
			p.log.Debug("ice reconnected")
		}
	case webrtc.ICEConnectionStateFailed, webrtc.ICEConnectionStateClosed:
		p.log.Debug("ice state ends peer", "state", s.String())
		p.closeAsync()
	}
}

// stopGraceLocked ends a running grace period; it reports whether there was one.
func (p *peer) stopGraceLocked() bool {
	if p.grace == nil {
		return false
	}
	p.grace.Stop()
	p.grace = nil
	p.b.disconnected.Add(-1)
	return true
}

// graceOver closes the peer if ICE is still disconnected in the grace period numbered gen.
func (p *peer) graceOver(gen uint64) {
	p.mu.Lock()
	expired := p.grace != nil && p.graceGen == gen
	p.mu.Unlock()
	if expired {
		p.log.Debug("ice still disconnected after grace", "grace", p.b.cfg.DisconnectedGrace)
		p.close()
	}
}

func (p *peer) connectTimeout() {
	p.mu.Lock()
	opened := p.conn != nil
	p.mu.Unlock()
	if !opened {
		p.log.Debug("no channel within connect timeout", "timeout", p.b.cfg.ConnectTimeout)
		p.close()
	}
}

// onOpen runs in pion's OnOpen callback, where detaching must happen.
func (p *peer) onOpen(dc *webrtc.DataChannel) {
	rwc, err := dc.DetachWithDeadline()
	if err != nil {
		p.log.Warn("detach data channel", "err", err)
		p.closeAsync()
		return
	}
	p.mu.Lock()
	if p.closing || p.conn != nil { // closed meanwhile, or a second channel: one conn per peer
		p.mu.Unlock()
		_ = rwc.Close()
		return
	}
	c := newConn(p, p.pc, rwc)
	p.conn = c
	p.timer.Stop()
	p.mu.Unlock()

	if !p.b.addConn(c) {
		c.shut()
		return
	}
	p.log.Debug("channel open", "remote", c.remote, "chunk", c.chunk)
	if p.outgoing {
		p.b.park(c)
	} else {
		p.b.deliver(c)
	}
}

// closeAsync closes the peer without blocking the caller (pion callbacks, Conn.Close under the
// torrent client's lock). Once the bridge is closing, Bridge.Close closes every peer itself; a
// pion callback must not wait for that, since pc.Close may be waiting for the callback.
func (p *peer) closeAsync() {
	p.b.spawn(p.close)
}

// close closes the conn and the PeerConnection. Every caller returns only once it is done.
func (p *peer) close() {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		<-p.closedCh
		return
	}
	p.closing = true
	pc, conn, timer := p.pc, p.conn, p.timer
	p.stopGraceLocked()
	p.mu.Unlock()

	if timer != nil {
		timer.Stop()
	}
	if conn != nil {
		conn.shut()
	}
	if pc != nil {
		if err := pc.Close(); err != nil {
			p.log.Debug("close peer connection", "err", err)
		}
	}
	p.b.release(p)
	close(p.closedCh)
}

// waitGathered waits for ICE gathering (non-trickle signaling) and returns the local SDP.
func (p *peer) waitGathered(ctx context.Context, gathered <-chan struct{}) (string, error) {
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", ctx.Err()
	case <-p.closedCh:
		return "", ErrClosed
	}
	desc := p.pc.LocalDescription()
	if desc == nil {
		return "", ErrClosed
	}
	return desc.SDP, nil
}

// Answer applies a remote offer and returns the answer with all ICE candidates in it. The
// channel opens later; its conn is then returned by Accept. On error nothing is left behind.
func (b *Bridge) Answer(ctx context.Context, meta PeerMeta, offerSDP string) (answerSDP string, err error) {
	p, err := b.newPeer(meta, false)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	p.pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnOpen(func() { p.onOpen(dc) })
	})
	offer := webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}
	if err := p.pc.SetRemoteDescription(offer); err != nil {
		return "", fmt.Errorf("%w: offer: %w", ErrInvalidSDP, err)
	}
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("bridge: create answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("bridge: set local answer: %w", err)
	}
	return p.waitGathered(ctx, gathered)
}

// PendingOffer is an offer waiting for its answer.
type PendingOffer struct {
	p   *peer
	sdp string

	mu       sync.Mutex
	accepted bool
	closed   bool
}

// Offer creates a PeerConnection with one data channel and waits for ICE gathering. When the
// remote's answer is applied (PendingOffer.Accept) and the channel opens, the conn is parked and
// Config.OnDialable is called.
func (b *Bridge) Offer(ctx context.Context, meta PeerMeta) (_ *PendingOffer, err error) {
	if b.cfg.OnDialable == nil {
		return nil, ErrNoOnDialable
	}
	p, err := b.newPeer(meta, true)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	// Ordered and reliable: BitTorrent needs a byte stream. The label is free-form.
	dc, err := p.pc.CreateDataChannel("swarmgate", nil)
	if err != nil {
		return nil, fmt.Errorf("bridge: create data channel: %w", err)
	}
	dc.OnOpen(func() { p.onOpen(dc) })
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		return nil, fmt.Errorf("bridge: create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(offer); err != nil {
		return nil, fmt.Errorf("bridge: set local offer: %w", err)
	}
	sdp, err := p.waitGathered(ctx, gathered)
	if err != nil {
		return nil, err
	}
	return &PendingOffer{p: p, sdp: sdp}, nil
}

// SDP is the offer, with all ICE candidates in it.
func (o *PendingOffer) SDP() string { return o.sdp }

// Accept applies the remote answer. The channel opens later and then reaches Config.OnDialable;
// if it does not open within ConnectTimeout the PeerConnection is closed.
func (o *PendingOffer) Accept(answerSDP string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.p.mu.Lock()
	gone := o.p.closing // ConnectTimeout or Bridge.Close came first
	o.p.mu.Unlock()
	if o.closed || o.accepted || gone {
		return ErrClosed
	}
	answer := webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answerSDP}
	if err := o.p.pc.SetRemoteDescription(answer); err != nil {
		o.closed = true
		o.p.close()
		return fmt.Errorf("%w: answer: %w", ErrInvalidSDP, err)
	}
	o.accepted = true
	return nil
}

// Close abandons an offer that got no answer and closes its PeerConnection. After a successful
// Accept it does nothing: the conn owns the PeerConnection from then on. Idempotent.
func (o *PendingOffer) Close() error {
	o.mu.Lock()
	if o.closed || o.accepted {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	o.mu.Unlock()
	o.p.close()
	return nil
}
