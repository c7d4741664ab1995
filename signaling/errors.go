package signaling

import "errors"

var (
	// ErrInvalidConfig is returned by Config.Validate and New for an unusable Config.
	ErrInvalidConfig = errors.New("signaling: invalid config")
	// ErrClosed is returned by operations on a closed Server.
	ErrClosed = errors.New("signaling: closed")
	// ErrBadID is returned for a value that is not a 20-byte ID.
	ErrBadID = errors.New("invalid 20-byte id")

	// ErrBadMessage marks a protocol message that cannot be understood.
	ErrBadMessage = errors.New("malformed message")
	// ErrUnknownAction marks a message whose action is neither announce nor scrape.
	ErrUnknownAction = errors.New("unknown action")
	// ErrUnknownEvent marks an announce with an event the protocol does not define.
	ErrUnknownEvent = errors.New("unknown event")
	// ErrSwarmFull refuses a new peer in a swarm that holds MaxPeersPerSwarm peers.
	ErrSwarmFull = errors.New("swarm is full")
	// ErrTooManySwarms refuses a new (info_hash, peer_id) on a socket that holds MaxSwarmsPerSocket of them.
	ErrTooManySwarms = errors.New("too many swarms on this socket")
	// ErrInfoHashNotAllowed refuses an announce for an info_hash Config.AllowInfoHash turns down.
	ErrInfoHashNotAllowed = errors.New("info_hash not served by this tracker")
	// ErrOfferRate reports offers dropped because the socket sent more than Config.OffersPerSecond.
	ErrOfferRate = errors.New("too many offers")
	// ErrTooManyHashes refuses a scrape of more than MaxScrapeHashes info hashes.
	ErrTooManyHashes = errors.New("too many info hashes")
	// ErrReservedPeerID refuses a socket announce with the local peer's ID.
	ErrReservedPeerID = errors.New("peer_id is reserved")
	// ErrNotAnnounced refuses an answer whose peer_id was not announced on this socket for that info_hash.
	ErrNotAnnounced = errors.New("peer_id not announced on this socket for this info_hash")
	// ErrUnknownOffer refuses an answer that matches no live offer relayed to the answering peer.
	ErrUnknownOffer = errors.New("answer matches no pending offer sent to this peer")

	// ErrNoLocalPeer is returned by SendOffer before AttachLocal.
	ErrNoLocalPeer = errors.New("signaling: no local peer attached")
	// ErrNotJoined is returned by SendOffer for a swarm the local peer has not joined.
	ErrNotJoined = errors.New("signaling: local peer has not joined this swarm")
	// ErrUnknownPeer is returned by SendOffer for a peer that is not in the swarm.
	ErrUnknownPeer = errors.New("signaling: no such peer in swarm")
	// ErrPeerGone is returned by SendOffer when the remote peer's socket went away before it answered.
	ErrPeerGone = errors.New("signaling: peer went away")
	// ErrOfferTimeout is returned by SendOffer when no answer came within Config.OfferTimeout.
	ErrOfferTimeout = errors.New("signaling: offer timed out")
)
