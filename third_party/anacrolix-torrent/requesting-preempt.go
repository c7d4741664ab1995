package torrent

// swarmgate patch: requests for urgent pieces displace queued requests for less urgent ones.
//
// Upstream fills a peer's request queue in batches and adds to it only once it has drained
// (updatePeerRequestsForPiece skips a conn that is not low on requests), and it never cancels a
// request to make room. A reader that seeks far ahead then waits for every request already queued
// at the peer: with a 2 MiB/s seeder and the in-order download's queue full, 5 s and 10 MiB
// before the seek's first piece is even asked for. Here a piece whose priority rises to
// readahead or above wakes the conns that can serve it, and applyRequestState, when the queue is
// full, cancels the conn's least urgent requests (the most recently sent first: FIFO peers such
// as Transmission would serve them last) to send the urgent ones in their place. Requests of
// equal priority never displace each other, so readers at the same priority do not churn.

import (
	"slices"

	"github.com/anacrolix/generics/heap"
	"github.com/anacrolix/multiless"
)

const peerUpdateRequestsPreemptReason = updateRequestReason("swarmgate: urgent piece")

// onPieceUrgent wakes the conns whose queue is full of requests that may be less urgent than this
// piece. Conns low on requests are updated by updatePeerRequestsForPiece already.
func (t *Torrent) onPieceUrgent(piece pieceIndex) {
	if t.disableTriggers || !t.haveInfo() {
		return
	}
	if t.piece(piece).effectivePriority() < PiecePriorityReadahead {
		return
	}
	for c := range t.conns {
		if c.isLowOnRequests() || !c.peerHasPiece(piece) {
			continue
		}
		if c.peerChoking && !c.peerAllowedFast.Contains(piece) {
			continue
		}
		c.onNeedUpdateRequests(peerUpdateRequestsPreemptReason)
	}
}

// requestPreemption is applyRequestState's state for displacing requests in one update.
type requestPreemption struct {
	p       *PeerConn
	next    *desiredRequestState
	heap    heap.Interface[RequestIndex]
	victims []preemptionVictim // the conn's requests, least urgent first; built on first use
	built   bool
	swapped int
}

type preemptionVictim struct {
	r    RequestIndex
	prio PiecePriority
}

// makeRoom is called with the conn's queue full. It drops from the heap the desired requests
// that need nothing (already asked of this conn, held by another, awaiting a cancel's
// acknowledgement), then, if the most urgent left outranks the conn's least urgent request,
// cancels that request and reports true: the caller pops and requests the urgent one.
func (rp *requestPreemption) makeRoom(originalRequestCount uint64) bool {
	p := rp.p
	t := p.t
	if p.needRequestUpdate == peerUpdateRequestsRemoteRejectReason {
		return false
	}
	current := &p.requestState
	// request() refuses above nominalMaxRequests; peakRequests can have fallen below the queue.
	if maxRequests(current.Requests.GetCardinality()) > p.nominalMaxRequests() {
		return false
	}
	// Each swap writes a cancel and a request: stay within what fits in the write buffer (see
	// maxLocalToRemoteRequests), next to the requests this update has added.
	added := int(current.Requests.GetCardinality()) - int(originalRequestCount)
	if added+2*(rp.swapped+1) > maxLocalToRemoteRequests {
		return false
	}
	for rp.heap.Len() > 0 {
		top := rp.next.Requests.requestIndexes[0]
		if current.Requests.Contains(top) || current.Cancelled.Contains(top) || t.requestingPeer(top) != nil {
			heap.Pop(rp.heap)
			continue
		}
		prio := rp.next.Requests.pieceStates[t.pieceIndexOfRequestIndex(top)].UnwrapPtr().Priority
		if prio < PiecePriorityReadahead {
			return false
		}
		victim, ok := rp.leastUrgent()
		if !ok || victim.prio >= prio {
			return false
		}
		rp.victims = rp.victims[1:]
		// Not PeerConn.cancel: that lowers peakRequests, and this update is about to refill the slot.
		if !p.deleteRequest(victim.r) {
			panic("victim request should exist")
		}
		p.handleCancel(victim.r)
		rp.swapped++
		return true
	}
	return false
}

// leastUrgent is the conn's outstanding request of lowest priority, the most recently sent among
// equals.
func (rp *requestPreemption) leastUrgent() (preemptionVictim, bool) {
	p := rp.p
	t := p.t
	if !rp.built {
		rp.built = true
		whenOf := func(r RequestIndex) int64 { return t.requestState[r].when.UnixNano() }
		p.requestState.Requests.Iterate(func(r RequestIndex) bool {
			prio := t.piece(t.pieceIndexOfRequestIndex(r)).effectivePriority()
			rp.victims = append(rp.victims, preemptionVictim{r, prio})
			return true
		})
		slices.SortFunc(rp.victims, func(a, b preemptionVictim) int {
			return multiless.New().Int(int(a.prio), int(b.prio)).Int64(whenOf(b.r), whenOf(a.r)).OrderingInt()
		})
	}
	for len(rp.victims) > 0 {
		v := rp.victims[0]
		if p.requestState.Requests.Contains(v.r) {
			return v, true
		}
		rp.victims = rp.victims[1:]
	}
	return preemptionVictim{}, false
}

// keepPeak says whether an update must leave peakRequests as it was: one woken to displace
// requests, or that displaced some, added few or none of its own, and upstream's rule (the peak is
// what the last update added) would restart the conn's ramp from one request.
func (rp *requestPreemption) keepPeak(reason updateRequestReason) bool {
	return reason == peerUpdateRequestsPreemptReason || rp.swapped > 0
}
