package torrent

// swarmgate patch: serve a peer's requests in the order they came.
//
// Upstream keeps a peer's requests in maps and reads and sends them in Go's map order, which is
// random. A peer orders its requests by urgency (a reader's current piece first, then its
// readahead), and with reqq 1024 a queue holds up to 16 MiB: a viewer's urgent piece could wait for
// most of it. Transmission and libtorrent answer in order received; so do these queues. The maps
// stay the truth; a queue entry whose request has left its map is skipped when it reaches the
// front.

import "slices"

type peerRequestQueue []Request

// pushPeerRequest appends r, which has just entered m. Entries whose request left m (cancelled,
// or the conn choked) would otherwise stay until they reach the front: a peer that requests and
// cancels in a loop while the server waits could grow the queue without end, so it is compacted
// when it holds more than twice what m does.
func pushPeerRequest[V any](q *peerRequestQueue, m map[Request]V, r Request) {
	if len(*q) > 2*len(m)+64 {
		*q = slices.DeleteFunc(*q, func(r Request) bool { _, ok := m[r]; return !ok })
	}
	*q = append(*q, r)
}

// front drops entries no longer in m and returns the oldest one still there.
func frontPeerRequest[V any](q *peerRequestQueue, m map[Request]V) (Request, bool) {
	for len(*q) > 0 {
		r := (*q)[0]
		if _, ok := m[r]; ok {
			return r, true
		}
		*q = (*q)[1:]
	}
	// Every request enters its queue when it enters its map, so the map is empty too. Should that
	// ever not hold, serve what is left in map order rather than strand it.
	for r := range m {
		return r, true
	}
	*q = nil
	return Request{}, false
}

func (c *PeerConn) oldestUnreadPeerRequest() (Request, bool) {
	return frontPeerRequest(&c.unreadPeerRequestOrder, c.unreadPeerRequests)
}

func (c *PeerConn) oldestReadyPeerRequest() (Request, bool) {
	return frontPeerRequest(&c.readyPeerRequestOrder, c.readyPeerRequests)
}
