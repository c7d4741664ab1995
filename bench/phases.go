package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmgate/swarmgate/bridge"
	"github.com/swarmgate/swarmgate/gateway"
	"github.com/swarmgate/swarmgate/internal/gatewaytest"
	"github.com/swarmgate/swarmgate/internal/peertest"
	"github.com/swarmgate/swarmgate/internal/rawpion"
)

// Per-phase time limits. Everything is on loopback, so these are generous.
const (
	rawTimeout      = 2 * time.Minute
	connectTimeout  = 30 * time.Second
	transferTimeout = 5 * time.Minute
	idleTimeout     = 30 * time.Second
	pipelineDepth   = 256
)

// errCorrupt marks a download whose bytes differ from the seeder's.
var errCorrupt = errors.New("sha256 mismatch")

// measureRaw is the ceiling: two pion peers, one detached channel, 16 KiB messages, the bridge's
// data-channel settings, no Conn.
func measureRaw(size int64) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rawTimeout)
	defer cancel()
	cfg := bridge.DefaultConfig()
	return rawpion.Measure(ctx, rawpion.Settings{ReceiveBuffer: cfg.ReceiveBuffer, MaxMessageSize: cfg.MaxMessageSize}, size)
}

// measureConn sends size bytes in 16 KiB writes through two Bridges' Conns (what the gateway and
// a peer use): the raw channel plus Conn's buffering, chunking, deadlines and wire shim. stall is
// the longest wait between two reads: SCTP's retransmission timeout (≥ 1 s) shows up there.
func measureConn(size int64, log *slog.Logger) (bps float64, stall time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), rawTimeout)
	defer cancel()
	dialable := make(chan string, 1)
	cfg := bridge.DefaultConfig()
	cfg.LoopbackOnly = true
	offCfg := cfg
	offCfg.OnDialable = func(_ bridge.PeerMeta, addr string) {
		select {
		case dialable <- addr:
		default:
		}
	}
	off, err := bridge.New(offCfg, log)
	if err != nil {
		return 0, 0, err
	}
	defer off.Close()
	ans, err := bridge.New(cfg, log)
	if err != nil {
		return 0, 0, err
	}
	defer ans.Close()
	// Accept has no context: closing the bridges on timeout ends it.
	stop := context.AfterFunc(ctx, func() { off.Close(); ans.Close() })
	defer stop()

	meta := bridge.PeerMeta{InfoHash: [20]byte{'b', 'e', 'n', 'c', 'h'}, PeerID: [20]byte{'c', 'o', 'n', 'n'}}
	po, err := off.Offer(ctx, meta)
	if err != nil {
		return 0, 0, err
	}
	answer, err := ans.Answer(ctx, meta, po.SDP())
	if err != nil {
		return 0, 0, err
	}
	if err := po.Accept(answer); err != nil {
		return 0, 0, err
	}
	r, err := ans.Accept()
	if err != nil {
		return 0, 0, err
	}
	defer r.Close()
	var addr string
	select {
	case addr = <-dialable:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	w, err := off.Dial(ctx, addr)
	if err != nil {
		return 0, 0, err
	}
	defer w.Close()

	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, rawpion.MessageSize)
		for left := size; left > 0; left -= int64(len(buf)) {
			if _, err := w.Write(buf[:min(int64(len(buf)), left)]); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	buf := make([]byte, cfg.MaxMessageSize)
	last := start
	var got int64
	for got < size {
		n, err := r.Read(buf)
		if err != nil {
			w.Close()
			<-werr
			return 0, 0, fmt.Errorf("conn read after %d bytes: %w", got, err)
		}
		now := time.Now()
		stall = max(stall, now.Sub(last))
		last = now
		got += int64(n)
	}
	if err := <-werr; err != nil {
		return 0, 0, err
	}
	return float64(size) / time.Since(start).Seconds(), stall, nil
}

// runningGateway is a loopback gateway started as the e2e tests start theirs (internal/gatewaytest,
// data in a temporary folder), with the API calls the scenarios make.
type runningGateway struct{ *gatewaytest.Server }

func startGateway(log *slog.Logger) (*runningGateway, error) {
	s, err := gatewaytest.Start(gatewaytest.Config(""), log)
	if err != nil {
		return nil, err
	}
	return &runningGateway{s}, nil
}

// close stops the gateway and removes its data; a gateway that does not stop cleanly is worth a
// warning, not a failed measurement.
func (rg *runningGateway) close() {
	if err := rg.Close(); err != nil {
		slog.Warn("gateway serve", "err", err)
	}
}

// addMagnet is POST /api/torrents with the seeder's magnet (x.pe is its only address).
func (rg *runningGateway) addMagnet(magnet string) error {
	body, _ := json.Marshal(map[string]string{"magnet": magnet})
	c := http.Client{Timeout: 10 * time.Second}
	res, err := c.Post(rg.URL+"/api/torrents", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(res.Body)
		return fmt.Errorf("POST /api/torrents: %s %s", res.Status, b)
	}
	return nil
}

// metainfo is GET /api/torrents/:ih/metainfo, which waits for the gateway to have metadata.
func (rg *runningGateway) metainfo(ih string) (*metainfo.MetaInfo, error) {
	c := http.Client{Timeout: connectTimeout}
	res, err := c.Get(rg.URL + "/api/torrents/" + ih + "/metainfo")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return nil, fmt.Errorf("metainfo: %s %s", res.Status, b)
	}
	return metainfo.Load(res.Body)
}

// waitComplete waits for the gateway to hold every piece.
func (rg *runningGateway) waitComplete(ih metainfo.Hash) error {
	t, ok := rg.Gateway.Client().Torrent(ih)
	if !ok {
		return errors.New("gateway lost the torrent")
	}
	select {
	case <-t.Complete().On():
		return nil
	case <-time.After(transferTimeout):
		return fmt.Errorf("gateway not complete after %v: %d of %d bytes", transferTimeout, t.BytesCompleted(), t.Length())
	}
}

// watchFetch polls the gateway's torrent every 2 ms for its first useful bytes and completion.
func (rg *runningGateway) watchFetch(ih metainfo.Hash, stop <-chan struct{}, first, done *time.Time) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			t, ok := rg.Gateway.Client().Torrent(ih)
			if !ok {
				continue
			}
			if first.IsZero() {
				if st := t.Stats(); st.BytesReadUsefulData.Int64() > 0 {
					*first = now
				}
			}
			if t.Info() != nil && t.Complete().Bool() {
				*done = now
				return
			}
		}
	}
}

// rawRun is one raw wire peer's download through the gateway.
type rawRun struct {
	Join      time.Time // Connect called: first announce with an offer
	Open      time.Time // data channel open, conn returned
	Wire      peertest.WireStats
	Posted    time.Time // cold runs: POST /api/torrents sent
	Metadata  time.Time // cold runs: the gateway's metainfo endpoint answered
	GWFirst   time.Time // cold runs: the gateway's first useful bytes from the native seeder
	GWDone    time.Time // cold runs: the gateway holds every piece
	TotalSize int64
}

func (r rawRun) joinToDone() float64 {
	return float64(r.TotalSize) / r.Wire.Done.Sub(r.Join).Seconds()
}
func (r rawRun) handshakeToDone() float64 {
	return float64(r.TotalSize) / r.Wire.Done.Sub(r.Wire.Handshake).Seconds()
}
func (r rawRun) firstPieceToDone() float64 {
	return float64(r.TotalSize) / r.Wire.Done.Sub(r.Wire.FirstPiece).Seconds()
}

// rawDownload connects a raw WebRTC peer (created beforehand) to the gateway through its tracker
// and downloads the whole file with 256 requests in flight, checking SHA-256.
func rawDownload(p *peertest.WebRTCPeer, s *peertest.Seeder, run *rawRun) error {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout+transferTimeout)
	defer cancel()
	cctx, ccancel := context.WithTimeout(ctx, connectTimeout)
	defer ccancel()
	run.TotalSize = s.Info.TotalLength()
	run.Join = time.Now()
	conn, err := p.Connect(cctx, s.MetaInfo.HashInfoBytes(), s.Info.TotalLength())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	run.Open = time.Now()
	data, res, err := peertest.WireDownload(ctx, conn, s.MetaInfo.HashInfoBytes(), p.PeerID(), s.Info, pipelineDepth, idleTimeout)
	run.Wire = res
	if err != nil {
		return fmt.Errorf("wire download: %w (max outstanding %d, chokes %d)", err, res.MaxOutstanding, res.Chokes)
	}
	if sha256.Sum256(data) != s.SHA256 {
		return fmt.Errorf("raw wire peer: %w", errCorrupt)
	}
	return nil
}

func newRawPeer(base string, log *slog.Logger) (*peertest.WebRTCPeer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	return peertest.NewWebRTCPeer(ctx, peertest.PeerOptions{TrackerURL: gateway.TrackerURL(base), Raw: true, Log: log})
}

// rawScenario: a fresh gateway; POST the magnet; a raw peer (already on the tracker) joins at
// once, so it downloads while the gateway fetches from the seeder (cold). Then, once the gateway
// holds the whole file, a second raw peer downloads it (warm).
func rawScenario(s *peertest.Seeder, log *slog.Logger) (cold, warm rawRun, err error) {
	rg, err := startGateway(log)
	if err != nil {
		return cold, warm, err
	}
	defer rg.close()
	ih := s.MetaInfo.HashInfoBytes()

	p, err := newRawPeer(rg.URL, log)
	if err != nil {
		return cold, warm, err
	}
	stopProfile := prof.window("cold")
	cold.Posted = time.Now()
	if err := rg.addMagnet(s.Magnet()); err != nil {
		stopProfile()
		p.Close()
		return cold, warm, err
	}
	metaDone := make(chan error, 1)
	go func() {
		_, err := rg.metainfo(ih.HexString())
		cold.Metadata = time.Now()
		metaDone <- err
	}()
	watchDone := make(chan struct{})
	stopWatch := make(chan struct{})
	go func() {
		defer close(watchDone)
		rg.watchFetch(ih, stopWatch, &cold.GWFirst, &cold.GWDone)
	}()
	err = rawDownload(p, s, &cold)
	stopProfile()
	p.Close()
	if err == nil {
		err = rg.waitComplete(ih)
	}
	close(stopWatch)
	<-watchDone
	if merr := <-metaDone; err == nil && merr != nil {
		err = fmt.Errorf("metainfo: %w", merr)
	}
	if err != nil {
		return cold, warm, fmt.Errorf("cold: %w", err)
	}

	p, err = newRawPeer(rg.URL, log)
	if err != nil {
		return cold, warm, err
	}
	defer p.Close()
	stopProfile = prof.window("warm")
	err = rawDownload(p, s, &warm)
	stopProfile()
	if err != nil {
		return cold, warm, fmt.Errorf("warm: %w", err)
	}
	return cold, warm, nil
}

// clientRun is one anacrolix WebRTC peer's download through the gateway.
type clientRun struct {
	Join, Done time.Time
	TotalSize  int64
}

func (r clientRun) joinToDone() float64 {
	return float64(r.TotalSize) / r.Done.Sub(r.Join).Seconds()
}

func clientDownload(rg *runningGateway, mi *metainfo.MetaInfo, s *peertest.Seeder, log *slog.Logger, run *clientRun) error {
	dir, err := os.MkdirTemp("", "swarmgate-bench-peer-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	p, err := peertest.NewWebRTCPeer(ctx, peertest.PeerOptions{Dir: dir, TrackerURL: gateway.TrackerURL(rg.URL), Log: log})
	if err != nil {
		return err
	}
	defer p.Close()
	run.TotalSize = s.Info.TotalLength()
	run.Join = time.Now()
	tor, err := p.Join(mi)
	if err != nil {
		return err
	}
	select {
	case <-tor.Complete().On():
		run.Done = time.Now()
	case <-time.After(connectTimeout + transferTimeout):
		return fmt.Errorf("anacrolix peer not complete: %d of %d bytes", tor.BytesCompleted(), tor.Length())
	}
	for _, pc := range tor.PeerConns() {
		if pc.Network != bridge.Network {
			return fmt.Errorf("anacrolix peer has a %q conn; only WebRTC is allowed", pc.Network)
		}
	}
	sum, err := torrentSHA256(tor)
	if err != nil {
		return err
	}
	if sum != s.SHA256 {
		return fmt.Errorf("anacrolix peer: %w", errCorrupt)
	}
	return nil
}

func torrentSHA256(t *torrent.Torrent) ([32]byte, error) {
	r := t.NewReader()
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), transferTimeout)
	defer cancel()
	r.SetContext(ctx)
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return [32]byte{}, err
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// clientScenario is rawScenario with the anacrolix WebRTC peer (what the e2e tests use), which
// joins from the gateway's metainfo as a browser page does.
func clientScenario(s *peertest.Seeder, log *slog.Logger) (cold, warm clientRun, err error) {
	rg, err := startGateway(log)
	if err != nil {
		return cold, warm, err
	}
	defer rg.close()
	ih := s.MetaInfo.HashInfoBytes()
	if err := rg.addMagnet(s.Magnet()); err != nil {
		return cold, warm, err
	}
	mi, err := rg.metainfo(ih.HexString())
	if err != nil {
		return cold, warm, err
	}
	if err := clientDownload(rg, mi, s, log, &cold); err != nil {
		return cold, warm, fmt.Errorf("cold: %w", err)
	}
	if err := rg.waitComplete(ih); err != nil {
		return cold, warm, err
	}
	if err := clientDownload(rg, mi, s, log, &warm); err != nil {
		return cold, warm, fmt.Errorf("warm: %w", err)
	}
	return cold, warm, nil
}
