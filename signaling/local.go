package signaling

import (
	"context"
	"time"
)

// Offer is an SDP offer relayed through the tracker. PeerID is the offerer.
type Offer struct {
	InfoHash, PeerID, OfferID ID
	SDP                       string
}

// LocalPeer lets the gateway take part in the swarms it serves without a socket.
type LocalPeer interface {
	// WantOffer reports whether the local peer wants an offer from `from` in
	// swarm infoHash now (false e.g. when already connected to that peer, or
	// at its peer limit); a declined offer is relayed to another socket peer.
	// Must be fast; called without server locks held.
	WantOffer(infoHash, from ID) bool
	// HandleOffer answers an offer; the returned SDP is relayed to the
	// offerer as an answer from the local peer's ID.
	HandleOffer(ctx context.Context, o Offer) (answerSDP string, err error)
}

// PeerWatcher is an optional interface of a LocalPeer. PeerAnnounced is called after each
// announce (other than stopped) of a socket peer in a swarm the local peer joined, unless that
// announce handed the local peer an offer: it may then offer to the peer itself (SendOffer)
// rather than wait for the peer's next offers, which a seeder makes only once per announce
// interval. It runs on the socket's reader without server locks held, so it must not block.
type PeerWatcher interface {
	PeerAnnounced(infoHash ID, p PeerState)
}

// PeerState is what a socket peer said about itself in its last announce to one swarm. The
// server keeps it as reported and checks nothing of it.
type PeerState struct {
	ID     ID
	Seeder bool // left was 0, or the peer announced completed
	// Left is the byte count the peer still needs; -1 when it did not say (a webtorrent client
	// without the torrent's metadata sends null). A known Left means the peer has the metadata.
	Left                 int64
	Uploaded, Downloaded int64
}

type localOfferKey struct{ infoHash, offerID ID }

// localOffer is an offer of the local peer awaiting its answer.
type localOffer struct {
	to ID // the peer that may answer; its leaving the swarm fails the offer
	ch chan offerResult
}

type offerResult struct {
	sdp string
	err error
}

// finish delivers the outcome once; ch has room for exactly one.
func (lo *localOffer) finish(r offerResult) {
	select {
	case lo.ch <- r:
	default:
	}
}

// AttachLocal sets the server's local peer (one per server; a second call
// replaces the first). Socket peers may not announce with its id.
func (s *Server) AttachLocal(id ID, p LocalPeer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.localID, s.local = id, p
}

// Join makes the local peer take part in swarm infoHash: it may receive
// offers there and counts as a seeder in replies and scrapes.
func (s *Server) Join(infoHash ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sw := s.swarms[infoHash]
	if sw == nil {
		sw = &swarm{peers: make(map[ID]*peer)}
		s.swarms[infoHash] = sw
	}
	sw.local = true
}

// Leave undoes Join.
func (s *Server) Leave(infoHash ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sw := s.swarms[infoHash]; sw != nil {
		sw.local = false
		s.dropIfEmpty(infoHash, sw)
	}
}

// Peers returns the socket peers currently in swarm infoHash.
func (s *Server) Peers(infoHash ID) []ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	sw := s.swarms[infoHash]
	if sw == nil {
		return nil
	}
	ids := make([]ID, len(sw.list))
	for i, p := range sw.list {
		ids[i] = p.id
	}
	return ids
}

// SwarmPeers returns the socket peers currently in swarm infoHash, as they last announced.
func (s *Server) SwarmPeers(infoHash ID) []PeerState {
	s.mu.Lock()
	defer s.mu.Unlock()
	sw := s.swarms[infoHash]
	if sw == nil {
		return nil
	}
	out := make([]PeerState, len(sw.list))
	for i, p := range sw.list {
		out[i] = p.state()
	}
	return out
}

// offerToLocal hands an offer to the local peer on its own goroutine and
// sends the answer to the offerer's current socket.
func (s *Server) offerToLocal(local LocalPeer, o Offer) {
	s.offersRelayed.Add(1)
	// The caller is a socket reader, counted in wg, so Add cannot race Wait.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.OfferTimeout)
		defer cancel()
		sdp, err := local.HandleOffer(ctx, o)
		if err != nil {
			s.log.Debug("local peer did not answer", "info_hash", o.InfoHash, "from", o.PeerID, "err", err)
			return
		}
		s.mu.Lock()
		var target *conn
		if sw := s.swarms[o.InfoHash]; sw != nil {
			if p := sw.peers[o.PeerID]; p != nil {
				target = p.c
			}
		}
		localID := s.localID
		s.mu.Unlock()
		if target == nil {
			s.log.Debug("offerer left before the local answer", "info_hash", o.InfoHash, "from", o.PeerID)
			return
		}
		if target.send(answerJSON(o.InfoHash, localID, o.PeerID, o.OfferID, sdpText{str: sdp})) {
			s.answersRelayed.Add(1)
		}
	}()
}

// SendOffer relays an offer of the local peer to socket peer `to` in swarm
// infoHash and blocks until its answer, ctx is done, OfferTimeout passes, the
// peer's socket closes or the server closes.
func (s *Server) SendOffer(ctx context.Context, infoHash, to ID, sdp string) (string, error) {
	oid := randomID()
	key := localOfferKey{infoHash, oid}
	lo := &localOffer{to: to, ch: make(chan offerResult, 1)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return "", ErrClosed
	}
	if s.local == nil {
		s.mu.Unlock()
		return "", ErrNoLocalPeer
	}
	sw := s.swarms[infoHash]
	if sw == nil || !sw.local {
		s.mu.Unlock()
		return "", ErrNotJoined
	}
	p := sw.peers[to]
	if p == nil {
		s.mu.Unlock()
		return "", ErrUnknownPeer
	}
	target := p.c
	s.localOffers[key] = lo
	localID := s.localID
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.localOffers, key)
		s.mu.Unlock()
	}()

	if !target.send(offerJSON(infoHash, localID, oid, sdpText{str: sdp})) {
		return "", ErrPeerGone
	}
	s.offersRelayed.Add(1)
	timer := time.NewTimer(s.cfg.OfferTimeout)
	defer timer.Stop()
	select {
	case r := <-lo.ch:
		return r.sdp, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	case <-timer.C:
		return "", ErrOfferTimeout
	case <-s.ctx.Done():
		return "", ErrClosed
	}
}
