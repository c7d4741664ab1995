package signaling

import (
	"math/rand/v2"
	"time"
)

// swarm is the set of peers announced for one info_hash. Guarded by Server.mu.
type swarm struct {
	peers      map[ID]*peer
	list       []*peer // same peers, for O(1) random choice
	seeders    int     // peers with left == 0
	downloaded uint64  // completed events seen
	local      bool    // the local peer joined
}

type peer struct {
	id        ID
	c         *conn // the socket this peer_id is bound to
	seeder    bool
	completed bool // counted in downloaded already
	// left is the byte count the peer said it still needs; -1 while it has not said (a
	// webtorrent client without metadata sends null).
	left int64
	// uploaded and downloaded are the byte counts the peer reported in its last announce.
	uploaded, downloaded int64
	seen                 time.Time
	idx                  int // position in swarm.list
	// offers this peer made that were relayed and await an answer, by offer_id.
	offers map[ID]sentOffer
}

func (p *peer) state() PeerState {
	return PeerState{ID: p.id, Seeder: p.seeder, Left: p.left, Uploaded: p.uploaded, Downloaded: p.downloaded}
}

// sentOffer remembers where an offer went, so only that peer may answer it.
type sentOffer struct {
	to ID
	at time.Time
}

// maxPendingFactor × MaxOffersPerAnnounce bounds the unanswered offers kept
// per peer; webtorrent re-announces with fresh offers while older ones are
// still live, so one announce's worth is not enough.
const maxPendingFactor = 4

func (s *Server) counts(sw *swarm) (complete, incomplete int) {
	if sw == nil {
		return 0, 0
	}
	complete = sw.seeders
	if sw.local {
		complete++ // the local peer serves the data
	}
	return complete, len(sw.peers) - sw.seeders
}

func (sw *swarm) add(p *peer) {
	p.idx = len(sw.list)
	sw.list = append(sw.list, p)
	sw.peers[p.id] = p
	if p.seeder {
		sw.seeders++
	}
}

func (sw *swarm) setSeeder(p *peer, seeder bool) {
	if p.seeder == seeder {
		return
	}
	p.seeder = seeder
	if seeder {
		sw.seeders++
	} else {
		sw.seeders--
	}
}

// removePeer takes p out of its swarm and its socket. Caller holds s.mu.
func (s *Server) removePeer(ih ID, sw *swarm, p *peer) {
	last := sw.list[len(sw.list)-1]
	sw.list[p.idx] = last
	last.idx = p.idx
	sw.list[len(sw.list)-1] = nil
	sw.list = sw.list[:len(sw.list)-1]
	delete(sw.peers, p.id)
	if p.seeder {
		sw.seeders--
	}
	p.c.unbind(binding{ih, p.id})
	// Offers of the local peer to p can no longer be answered; the map is
	// as small as the number of SendOffer calls in flight.
	for k, lo := range s.localOffers {
		if k.infoHash == ih && lo.to == p.id {
			lo.finish(offerResult{err: ErrPeerGone})
			delete(s.localOffers, k)
		}
	}
}

// dropIfEmpty forgets a swarm nobody is in. Caller holds s.mu.
func (s *Server) dropIfEmpty(ih ID, sw *swarm) {
	if len(sw.peers) == 0 && !sw.local {
		delete(s.swarms, ih)
	}
}

// pickTargets returns up to n distinct random peers of sw, none on socket
// from. Caller holds s.mu.
func pickTargets(sw *swarm, from *conn, n int) []*peer {
	if n <= 0 || len(sw.list) == 0 {
		return nil
	}
	// Small swarms: shuffle them all. Large ones: sample with rejection,
	// which needs few draws because n is small next to the swarm.
	if len(sw.list) <= 4*n+8 {
		out := make([]*peer, 0, n)
		for _, i := range rand.Perm(len(sw.list)) {
			if p := sw.list[i]; p.c != from {
				out = append(out, p)
				if len(out) == n {
					break
				}
			}
		}
		return out
	}
	out := make([]*peer, 0, n)
	for tries := 0; len(out) < n && tries < 8*n; tries++ {
		p := sw.list[rand.IntN(len(sw.list))]
		if p.c == from || containsPeer(out, p) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func containsPeer(ps []*peer, p *peer) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// rememberOffer records that p's offer oid went to peer to, evicting p's
// oldest pending offer when p already has too many.
func (s *Server) rememberOffer(p *peer, oid, to ID, now time.Time) {
	if p.offers == nil {
		p.offers = make(map[ID]sentOffer)
	}
	if _, ok := p.offers[oid]; !ok && len(p.offers) >= maxPendingFactor*s.cfg.MaxOffersPerAnnounce {
		var oldest ID
		var oldestAt time.Time
		first := true
		for id, o := range p.offers {
			if first || o.at.Before(oldestAt) {
				oldest, oldestAt, first = id, o.at, false
			}
		}
		delete(p.offers, oldest)
	}
	p.offers[oid] = sentOffer{to: to, at: now}
}
