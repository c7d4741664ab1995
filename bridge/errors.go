package bridge

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by operations on a closed Bridge, PendingOffer or Conn.
	ErrClosed = errors.New("bridge: closed")

	// ErrTooManyPeers is returned when Config.MaxPeers PeerConnections are already live.
	ErrTooManyPeers = errors.New("bridge: too many peer connections")

	// ErrTooManyPeersInSwarm (an ErrTooManyPeers) is returned when Config.MaxPeersPerSwarm
	// PeerConnections of the info hash are already live.
	ErrTooManyPeersInSwarm = fmt.Errorf("%w in this swarm", ErrTooManyPeers)

	// ErrInvalidConfig wraps every error from Config.Validate.
	ErrInvalidConfig = errors.New("bridge: invalid config")

	// ErrInvalidSDP is returned when a remote offer or answer cannot be applied.
	ErrInvalidSDP = errors.New("bridge: invalid session description")

	// ErrNoOnDialable is returned by Offer when Config.OnDialable is nil: the opened conn would
	// have no way to reach the torrent client.
	ErrNoOnDialable = errors.New("bridge: Config.OnDialable is required to offer")

	// ErrUnknownAddr is returned by Dial for an address that is not a parked conn (any TCP/uTP
	// address, or one already claimed or expired).
	ErrUnknownAddr = errors.New("bridge: no parked conn at this address")

	// ErrWriteTimeout is returned (wrapping os.ErrDeadlineExceeded) when one write took longer than
	// Config.WriteTimeout; the conn is closed.
	ErrWriteTimeout = errors.New("bridge: write timeout, conn closed")
)
