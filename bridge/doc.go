// Package bridge is swarmgate's own pion WebRTC stack: it turns data channels into net.Conns that
// the BitTorrent client speaks the peer wire protocol over.
//
// It answers offers handed over by the signaling server (non-trickle: the full SDP after ICE
// gathering completes) and makes offers of its own. An answered peer's channel is handed to the
// torrent client as an incoming connection through [Bridge.Accept] (the Bridge is a Listener);
// an offered peer's channel is parked under an undialable address, announced through
// [Config.OnDialable], and handed out once through [Bridge.Dial] (the Bridge is a Dialer), because
// that is the only way the torrent client takes an outgoing connection it did not dial itself.
//
// A PeerConnection ends when its channel closes, when ICE fails, or when ICE stays disconnected
// longer than [Config.DisconnectedGrace]: a killed tab sends nothing, so ICE noticing the silence
// is the only sign of it, while a brief network loss recovers and keeps its connection.
//
// The room knows nothing of the signaling server, of trackers or of torrents beyond the 20-byte
// info hash and peer id carried as [PeerMeta], and the small peer-wire shim in wire.go that
// re-sends unchoke after interested (webtorrent drops seeders that do not). Everything pion-specific
// that is not a standard WebRTC knob is set in one place: newSettingEngine.
package bridge
