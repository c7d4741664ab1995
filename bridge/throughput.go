package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"
)

// RawMessageSize is the message size of the raw throughput measurement: webtorrent's block size.
const RawMessageSize = 16 << 10

// MeasureRawThroughput sends total bytes in 16 KiB messages over one detached data channel
// between two pion peers in this process, built with cfg's settings (use LoopbackOnly), and
// returns bytes per second. It is the ceiling the whole gateway path is compared against: no
// Conn, no wire shim, no torrent client.
func MeasureRawThroughput(ctx context.Context, cfg Config, total int64) (bytesPerSec float64, err error) {
	pair, err := newRawPair(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer pair.close()
	d, err := pair.transfer(ctx, total, RawMessageSize)
	if err != nil {
		return 0, err
	}
	return float64(total) / d.Seconds(), nil
}

// rawPair is two PeerConnections joined by one detached, ordered data channel.
type rawPair struct {
	closers []func()
	w, r    datachannel.ReadWriteCloserDeadliner
}

func newRawPair(ctx context.Context, cfg Config) (_ *rawPair, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	se, mux, err := newSettingEngine(cfg, slog.Default().With("component", "bridge"))
	if err != nil {
		return nil, err
	}
	pair := &rawPair{}
	defer func() {
		if err != nil {
			pair.close()
		}
	}()
	if mux != nil {
		pair.closers = append(pair.closers, func() { _ = mux.Close() })
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	conf := webrtc.Configuration{ICEServers: cfg.ICEServers}
	offerer, err := api.NewPeerConnection(conf)
	if err != nil {
		return nil, err
	}
	answerer, err := api.NewPeerConnection(conf)
	if err != nil {
		_ = offerer.Close()
		return nil, err
	}
	// Closed first so the mux closes last.
	pair.closers = append([]func(){func() { _ = offerer.Close(); _ = answerer.Close() }}, pair.closers...)

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
	dc, err := offerer.CreateDataChannel("raw", nil)
	if err != nil {
		return nil, err
	}
	detached(dc, wCh)
	answerer.OnDataChannel(func(dc *webrtc.DataChannel) { detached(dc, rCh) })

	if err := signalPair(ctx, offerer, answerer); err != nil {
		return nil, err
	}
	for _, ch := range []chan datachannel.ReadWriteCloserDeadliner{wCh, rCh} {
		select {
		case rwc := <-ch:
			if rwc == nil {
				return nil, errors.New("bridge: detach failed")
			}
			if pair.w == nil {
				pair.w = rwc
			} else {
				pair.r = rwc
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return pair, nil
}

// signalPair does a non-trickle offer/answer exchange between two local PeerConnections.
func signalPair(ctx context.Context, offerer, answerer *webrtc.PeerConnection) error {
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

// transfer writes total bytes in messages of size msg and returns when the reader has them all.
func (p *rawPair) transfer(ctx context.Context, total int64, msg int) (time.Duration, error) {
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
	buf := make([]byte, max(msg, int(DefaultConfig().MaxMessageSize)))
	var got int64
	for got < total {
		n, err := p.r.Read(buf)
		if err != nil {
			_ = p.w.SetWriteDeadline(time.Now())
			<-werr
			return 0, fmt.Errorf("bridge: raw read after %d bytes: %w", got, err)
		}
		got += int64(n)
	}
	if err := <-werr; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func (p *rawPair) close() {
	if p.w != nil {
		_ = p.w.Close()
	}
	if p.r != nil {
		_ = p.r.Close()
	}
	for _, c := range p.closers {
		c()
	}
}
