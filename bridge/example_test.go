package bridge_test

import (
	"context"
	"log/slog"

	"github.com/anacrolix/torrent"

	"github.com/swarmgate/swarmgate/bridge"
)

// Wiring a Bridge into a torrent client: answered peers arrive through the listener, offered
// peers are added to their torrent once their channel is open and then dialed through the bridge.
func Example() {
	var cl *torrent.Client // configured with DisableWebtorrent, DisablePEX, plain-text headers
	cfg := bridge.DefaultConfig()
	cfg.UDPPort = 50000
	cfg.OnDialable = func(meta bridge.PeerMeta, addr string) {
		if t, ok := cl.Torrent(meta.InfoHash); ok {
			t.AddPeers([]torrent.PeerInfo{{Addr: bridge.Addr(addr), Id: meta.PeerID, Source: "webrtc"}})
		}
	}
	b, err := bridge.New(cfg, slog.Default())
	if err != nil {
		return
	}
	defer b.Close()
	cl.AddListener(b)
	cl.AddDialer(b)

	// Signaling hands over a browser's offer: answer it, send the answer back.
	var meta bridge.PeerMeta
	var offerSDP string
	answerSDP, err := b.Answer(context.TODO(), meta, offerSDP)
	_, _ = answerSDP, err

	// Or offer to a browser, and apply its answer when it comes.
	po, err := b.Offer(context.TODO(), meta)
	if err != nil {
		return
	}
	_ = po.SDP() // send through signaling; on no answer: po.Close()
	_ = po.Accept("answer SDP from the browser")
}
