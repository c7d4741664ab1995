// Package rawpion measures the ceiling the bridge is compared against: two pion peers in one
// process joined by one detached, ordered data channel, with no bridge Conn, no wire shim and no
// torrent client. It is for benchmarks (bench/ and the bridge's own) and does not import the
// bridge, so that the bridge's tests can use it.
package rawpion

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/swarmgate/swarmgate/internal/udpbuf"
)

// MessageSize is the message size of the measurement: webtorrent's block size.
const MessageSize = 16 << 10

// Settings are the knobs of the bridge that bound a data channel's throughput; pass the bridge's
// (bridge.DefaultConfig()'s ReceiveBuffer and MaxMessageSize).
type Settings struct {
	ReceiveBuffer  uint32 // SCTP receive buffer per PeerConnection
	MaxMessageSize uint32 // the largest message advertised and accepted
}

// NewAPI builds a loopback-only pion API with the data-channel settings the bridge uses:
// detached channels, blocking writes, s's SCTP buffer and message size, zero checksum, enlarged
// UDP sockets; loopback interface and candidates, no mDNS.
func NewAPI(s Settings) (*webrtc.API, error) {
	var se webrtc.SettingEngine
	se.DetachDataChannels()
	se.EnableDataChannelBlockWrite(true)
	se.SetSCTPMaxReceiveBufferSize(s.ReceiveBuffer)
	se.SetSCTPMaxMessageSize(s.MaxMessageSize)
	se.EnableSCTPZeroChecksum(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	n, err := udpbuf.NewNet()
	if err != nil {
		return nil, fmt.Errorf("rawpion: network: %w", err)
	}
	se.SetNet(n)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se)), nil
}

// Measure sends total bytes in MessageSize messages over one detached data channel between two
// pion peers built with s, and returns bytes per second.
func Measure(ctx context.Context, s Settings, total int64) (bytesPerSec float64, err error) {
	api, err := NewAPI(s)
	if err != nil {
		return 0, err
	}
	pair, err := NewPair(ctx, api)
	if err != nil {
		return 0, err
	}
	defer pair.Close()
	d, err := pair.Transfer(ctx, total, MessageSize)
	if err != nil {
		return 0, err
	}
	return float64(total) / d.Seconds(), nil
}

// Pair is two PeerConnections joined by one detached, ordered data channel.
type Pair struct {
	offerer, answerer *webrtc.PeerConnection
	w, r              datachannel.ReadWriteCloserDeadliner
}

// NewPair connects two PeerConnections of api (non-trickle, no ICE servers) and waits for their
// channel to open on both sides.
func NewPair(ctx context.Context, api *webrtc.API) (_ *Pair, err error) {
	pair := &Pair{}
	defer func() {
		if err != nil {
			pair.Close()
		}
	}()
	if pair.offerer, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return nil, err
	}
	if pair.answerer, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return nil, err
	}
	detached := func(dc *webrtc.DataChannel, ch chan<- datachannel.ReadWriteCloserDeadliner) {
		dc.OnOpen(func() {
			rwc, err := dc.DetachWithDeadline()
			if err != nil {
				rwc = nil
			}
			ch <- rwc
		})
	}
	wCh := make(chan datachannel.ReadWriteCloserDeadliner, 1)
	rCh := make(chan datachannel.ReadWriteCloserDeadliner, 1)
	dc, err := pair.offerer.CreateDataChannel("raw", nil)
	if err != nil {
		return nil, err
	}
	detached(dc, wCh)
	pair.answerer.OnDataChannel(func(dc *webrtc.DataChannel) { detached(dc, rCh) })

	if err := signal(ctx, pair.offerer, pair.answerer); err != nil {
		return nil, err
	}
	for _, side := range []struct {
		ch  chan datachannel.ReadWriteCloserDeadliner
		rwc *datachannel.ReadWriteCloserDeadliner
	}{{wCh, &pair.w}, {rCh, &pair.r}} {
		select {
		case rwc := <-side.ch:
			if rwc == nil {
				return nil, errors.New("rawpion: detach failed")
			}
			*side.rwc = rwc
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return pair, nil
}

// signal does a non-trickle offer/answer exchange between two local PeerConnections.
func signal(ctx context.Context, offerer, answerer *webrtc.PeerConnection) error {
	gather := func(pc *webrtc.PeerConnection, desc webrtc.SessionDescription) (webrtc.SessionDescription, error) {
		done := webrtc.GatheringCompletePromise(pc)
		if err := pc.SetLocalDescription(desc); err != nil {
			return desc, err
		}
		select {
		case <-done:
		case <-ctx.Done():
			return desc, ctx.Err()
		}
		return *pc.LocalDescription(), nil
	}
	offer, err := offerer.CreateOffer(nil)
	if err != nil {
		return err
	}
	if offer, err = gather(offerer, offer); err != nil {
		return err
	}
	if err := answerer.SetRemoteDescription(offer); err != nil {
		return err
	}
	answer, err := answerer.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if answer, err = gather(answerer, answer); err != nil {
		return err
	}
	return offerer.SetRemoteDescription(answer)
}

// Transfer writes total bytes in messages of size msg and returns when the reader has them all.
func (p *Pair) Transfer(ctx context.Context, total int64, msg int) (time.Duration, error) {
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, msg)
		for left := total; left > 0; left -= int64(msg) {
			if ctx.Err() != nil {
				werr <- ctx.Err()
				return
			}
			if _, err := p.w.Write(buf[:min(int64(msg), left)]); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	stop := context.AfterFunc(ctx, func() { _ = p.r.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, msg) // a detached read fails on a buffer shorter than the message
	var got int64
	for got < total {
		n, err := p.r.Read(buf)
		if err != nil {
			_ = p.w.SetWriteDeadline(time.Now())
			<-werr
			return 0, fmt.Errorf("rawpion: read after %d bytes: %w", got, err)
		}
		got += int64(n)
	}
	if err := <-werr; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// Close closes the channel and both PeerConnections.
func (p *Pair) Close() {
	for _, c := range []datachannel.ReadWriteCloserDeadliner{p.w, p.r} {
		if c != nil {
			_ = c.Close()
		}
	}
	for _, pc := range []*webrtc.PeerConnection{p.offerer, p.answerer} {
		if pc != nil {
			_ = pc.Close()
		}
	}
}
