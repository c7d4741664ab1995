package signaling

import (
	"slices"
	"time"

	"golang.org/x/time/rate"
)

// Bus links this tracker with the trackers of the other gateways of a cluster, so that they act as
// one: a browser's websocket may land on any node, yet it meets every other peer of its swarms.
//
// Each swarm lives on one node, its owner (Owner). A socket's announces and answers for a swarm
// owned elsewhere are handed, as they came, to the owner (BusToSwarm); the owner serves them as
// from a socket of its own and sends what it writes back to the node that holds the socket
// (BusToSocket), which writes it. Offers and answers so reach the socket they are for, whichever
// node holds it. The tracker knows nothing of how messages travel: package cluster carries them
// over NATS. Without a Bus every swarm is local and nothing is forwarded.
//
// Limits: MaxSocketsPerIP is counted where the socket is (SocketsElsewhere adds the other
// nodes' counts); OffersPerSecond and MaxSwarmsPerSocket are counted by each owner for the
// swarms it owns.
type Bus interface {
	// Self names this node; Owner returns it for the swarms this tracker holds.
	Self() string
	// Owner names the node whose tracker holds the swarm of infoHash. Every node must come to the
	// same answer once membership settles; a message that reaches a node that no longer owns the
	// swarm is served there all the same (never forwarded twice).
	Owner(infoHash ID) string
	// Send hands m to node. It must not block for long and must be done with m.Data when it
	// returns. A message it cannot deliver is lost: the protocol is lossy (clients re-announce).
	Send(node string, m BusMessage)
}

// SocketCounter is an optional interface of a Bus: the sockets one client IP holds on the
// cluster's other nodes, so that MaxSocketsPerIP holds cluster-wide (within the bus's delay).
type SocketCounter interface {
	SocketsElsewhere(ip string) int
}

// BusKind says what a BusMessage carries.
type BusKind uint8

const (
	// BusToSwarm is a client message a socket on From sent for a swarm the receiver owns.
	BusToSwarm BusKind = iota + 1
	// BusToSocket is a message for the receiver to write to its socket Socket.
	BusToSocket
	// BusSocketClosed says socket Socket on From closed: its peers leave the receiver's swarms.
	BusSocketClosed
)

// BusMessage is one message between the trackers of two nodes.
type BusMessage struct {
	Kind   BusKind
	From   string // the sending node
	Socket uint64 // the socket, numbered by the node that holds it
	IP     string // BusToSwarm: the socket's client IP, for logs
	Data   []byte // BusToSwarm: the client's message; BusToSocket: the message to write
}

// remoteKey names a socket held by another node.
type remoteKey struct {
	node   string
	socket uint64
}

// forward hands a client message for a swarm owned by node to that node, and remembers the node
// so that it hears when the socket closes. The socket's reader calls it, and OwnersChanged.
func (s *Server) forward(c *conn, node string, data []byte) {
	c.mu.Lock()
	if !slices.Contains(c.forwardedTo, node) {
		c.forwardedTo = append(c.forwardedTo, node)
	}
	c.mu.Unlock()
	s.forwarded.Add(1)
	s.cfg.Bus.Send(node, BusMessage{Kind: BusToSwarm, From: s.cfg.Bus.Self(), Socket: c.id, IP: c.ip, Data: data})
}

// Deliver takes a message from another node's tracker; the bus calls it, from any goroutine.
// Messages of one socket must come in the order they were sent (one subscription does that).
func (s *Server) Deliver(m BusMessage) {
	switch m.Kind {
	case BusToSwarm:
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		key := remoteKey{m.From, m.Socket}
		c := s.remotes[key]
		if c == nil {
			c = &conn{s: s, origin: key, ip: m.IP, remote: m.From + "/" + m.IP}
			if s.cfg.OffersPerSecond > 0 {
				c.offers = rate.NewLimiter(rate.Limit(s.cfg.OffersPerSecond), s.cfg.offerBurst())
			}
			s.remotes[key] = c
		}
		c.lastSeen = time.Now()
		// handle may start a local-offer goroutine, counted in wg: add under mu, closed false.
		s.wg.Add(1)
		s.mu.Unlock()
		s.handle(c, m.Data)
		s.wg.Done()
	case BusToSocket:
		s.mu.Lock()
		c := s.conns[m.Socket]
		s.mu.Unlock()
		if c == nil {
			return // closed meanwhile; the owner hears of it
		}
		c.send(append(newMsg(len(m.Data)), m.Data...))
	case BusSocketClosed:
		s.mu.Lock()
		if c := s.remotes[remoteKey{m.From, m.Socket}]; c != nil {
			s.dropRemote(c)
		}
		s.mu.Unlock()
	}
}

// NodeGone forgets every socket held by node, which left the cluster: their peers leave this
// node's swarms at once rather than after PeerTimeout. Their browsers reconnect elsewhere.
func (s *Server) NodeGone(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, c := range s.remotes {
		if key.node == node {
			s.dropRemote(c)
		}
	}
}

// dropRemote forgets a socket of another node and every peer it announced here. Caller holds s.mu.
func (s *Server) dropRemote(c *conn) {
	delete(s.remotes, c.origin)
	c.mu.Lock()
	c.closed = true // what an offer handler still sends it goes nowhere
	c.mu.Unlock()
	s.unbindAll(c)
}

// sendRemote sends msg to a socket of another node through the bus and recycles it.
func (c *conn) sendRemote(msg []byte) bool {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		recycleMsg(msg)
		return false
	}
	c.s.cfg.Bus.Send(c.origin.node, BusMessage{Kind: BusToSocket, From: c.s.cfg.Bus.Self(), Socket: c.origin.socket, Data: msg})
	recycleMsg(msg)
	return true
}

// expireRemotes forgets the sockets of other nodes that hold no peer here and have been silent for
// PeerTimeout (their node's BusSocketClosed was lost). Caller holds s.mu.
func (s *Server) expireRemotes(deadline time.Time) {
	for _, c := range s.remotes {
		if len(c.peers) == 0 && c.lastSeen.Before(deadline) {
			s.dropRemote(c)
		}
	}
}

// socketClosed tells every node c forwarded to that it closed.
func (s *Server) socketClosed(c *conn) {
	c.mu.Lock()
	nodes := slices.Clone(c.forwardedTo)
	c.mu.Unlock()
	for _, node := range nodes {
		s.cfg.Bus.Send(node, BusMessage{Kind: BusSocketClosed, From: s.cfg.Bus.Self(), Socket: c.id})
	}
}

// SocketsPerIP returns the client IPs holding at least atLeast sockets on this node, with their
// counts: what a cluster shares so that MaxSocketsPerIP holds across nodes (SocketCounter).
func (s *Server) SocketsPerIP(atLeast int) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int)
	for ip, n := range s.perIP {
		if n >= atLeast {
			out[ip] = n
		}
	}
	return out
}

// replay is what a socket last announced in one swarm, without its offers: sent again to the
// swarm's owner when the owner changes (a node joined or left), so that the swarm moves with its
// peers at once rather than at their next announce, up to AnnounceInterval later.
type replay struct {
	msg   []byte
	owner string // where it went last
}

// noteAnnounce keeps m, an announce of c for swarm ih, for replay to owner's successors.
func (s *Server) noteAnnounce(c *conn, ih ID, m *inMessage, owner string) {
	ev, _, _ := stringField(m.Event, "event")
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev == "stopped" {
		delete(c.replays, ih)
		return
	}
	r := c.replays[ih]
	if r == nil {
		if len(c.replays) >= s.cfg.MaxSwarmsPerSocket {
			return
		}
		if c.replays == nil {
			c.replays = make(map[ID]*replay)
		}
		r = &replay{}
		c.replays[ih] = r
	}
	r.owner = owner
	b := append(r.msg[:0], `{"action":"announce","info_hash":`...)
	b = append(b, m.InfoHash...)
	for _, f := range []struct {
		name string
		raw  []byte
	}{{"peer_id", m.PeerID}, {"left", m.Left}, {"uploaded", m.Uploaded}, {"downloaded", m.Downloaded}} {
		if len(f.raw) > 0 {
			b = append(b, `,"`...)
			b = append(b, f.name...)
			b = append(b, `":`...)
			b = append(b, f.raw...)
		}
	}
	r.msg = append(b, '}')
}

// OwnersChanged sends each socket's last announce in every swarm whose owner changed to the new
// owner (Bus.Owner). The cluster calls it when members join or leave.
func (s *Server) OwnersChanged() {
	if s.cfg.Bus == nil {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.wg.Add(1) // handle may start local-offer goroutines
	s.mu.Unlock()
	defer s.wg.Done()
	self := s.cfg.Bus.Self()
	type move struct {
		to  string
		msg []byte
	}
	var moves []move
	for _, c := range conns {
		moves = moves[:0]
		c.mu.Lock()
		for ih, r := range c.replays {
			if owner := s.cfg.Bus.Owner(ih); owner != r.owner {
				r.owner = owner
				moves = append(moves, move{owner, slices.Clone(r.msg)})
			}
		}
		c.mu.Unlock()
		for _, mv := range moves {
			s.replayed.Add(1)
			if mv.to == self {
				s.handle(c, mv.msg)
			} else {
				s.forward(c, mv.to, mv.msg)
			}
		}
	}
}
