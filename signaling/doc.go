// Package signaling is the meeting room where WebRTC peers find each other:
// a WebTorrent-protocol websocket tracker (the wire format of the
// bittorrent-tracker npm package, spoken by webtorrent in browsers).
//
// Peers announce the swarms (info hashes) they take part in and hand the
// server SDP offers; the server relays each offer to one other peer of the
// swarm and relays the answer back to the offerer, nothing else. It knows
// nothing of torrent data: no pieces, no metadata, no peer wire protocol.
// An info hash is only the name of a room.
//
// Unlike the reference server it binds every peer_id to the socket that
// announced it, accepts an answer only for an offer it actually relayed to the
// answering peer, keeps sockets alive with pings, bounds every queue and
// table, and closes a slow socket instead of letting it block anyone.
//
// The gateway itself can take part in swarms without a socket through a
// LocalPeer (AttachLocal, Join): it answers the offers of socket peers, and
// makes its own (SendOffer) to peers it picks from SwarmPeers or hears of
// through PeerWatcher, by what they announced (left, uploaded, downloaded).
// Which peers are worth an offer is the LocalPeer's business, not the room's.
// Several gateways' trackers act as one through a Bus (bus.go): each swarm lives on one node,
// its owner, and a socket's messages for a swarm owned elsewhere are served there, with the
// replies carried back to the socket. The server knows nothing of how the bus carries them
// (package cluster does it over NATS); without a Bus every swarm is local.
//
// The peer's side of the protocol lives elsewhere (internal/trackerclient,
// for tests): the gateway never dials a tracker.
package signaling
