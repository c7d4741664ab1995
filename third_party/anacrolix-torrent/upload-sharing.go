package torrent

import "time"

// swarmgate patch: a seed among peers that trade with each other (browsers) sends each piece to
// as few of them as it can while its uplink is busy (super-seeding's aim, BEP 16, by other
// means). A request for a piece that another such peer of the torrent already has, or is being
// sent, is turned down once with a BEP 6 reject: the requester asks a peer that has it
// (webtorrent picks among the wires that have the piece), or asks again and is served, so
// nobody waits on it for more than one round trip.

// UploadSharing is ClientConfig.UploadSharing.
type UploadSharing struct {
	// Busy says whether the uplink is saturated now. Called with the client lock held: it must
	// not block.
	Busy func() bool
	// Trades says whether a peer on a conn of this network trades pieces with the torrent's
	// other such peers (browsers over WebRTC do; a native peer may not know them).
	Trades func(network string) bool
}

// UploadSharingDeclineWindow is how long after turning a conn's request for a piece down the conn's other
// requests for it (sent in the same burst, one per chunk) are turned down too; after it, the
// piece is served to that conn whatever else holds it.
const UploadSharingDeclineWindow = 200 * time.Millisecond

// declineRequest says whether to reject r because another trading peer has its piece. Called
// with the client lock held, once r is known to be valid and ours to serve.
func (c *PeerConn) declineRequest(r Request) bool {
	us := c.t.cl.config.UploadSharing
	if us == nil || !c.fastEnabled() || !us.Trades(c.Network) {
		return false
	}
	piece := pieceIndex(r.Index)
	if at, ok := c.declinedPieces[piece]; ok {
		return time.Since(at) < UploadSharingDeclineWindow
	}
	if !us.Busy() {
		return false
	}
	for other := range c.t.conns {
		if other != c && !other.closed.IsSet() && us.Trades(other.Network) && (other.peerHasPiece(piece) || other.servingPiece(piece)) {
			if c.declinedPieces == nil {
				c.declinedPieces = make(map[pieceIndex]time.Time)
			}
			c.declinedPieces[piece] = time.Now()
			c.t.cl.declinedRequests.Add(1)
			return true
		}
	}
	return false
}

// DeclinedRequests counts the requests turned down for UploadSharing.
func (cl *Client) DeclinedRequests() int64 { return cl.declinedRequests.Load() }

// servingPiece says whether the conn has requests for piece queued with us.
func (c *PeerConn) servingPiece(piece pieceIndex) bool {
	for r := range c.unreadPeerRequests {
		if pieceIndex(r.Index) == piece {
			return true
		}
	}
	for r := range c.readyPeerRequests {
		if pieceIndex(r.Index) == piece {
			return true
		}
	}
	return false
}
