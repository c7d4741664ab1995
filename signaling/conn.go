package signaling

import (
	"io"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// conn is one tracker websocket. Its reader goroutine lives as long as the socket; a writer
// goroutine exists only while messages wait to be written (see send), so an idle socket costs
// one parked goroutine, a small read buffer and these fields.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	remote string
	ip     string        // the client IP the socket counts against in MaxSocketsPerIP
	offers *rate.Limiter // OffersPerSecond; nil without a limit
	id     uint64        // names the socket to other nodes (Bus)

	// A socket held by another node (Bus) has no ws: origin names it, and what is sent to it
	// goes through the bus. lastSeen is guarded by s.mu.
	origin   remoteKey
	lastSeen time.Time
	// forwardedTo lists the nodes this socket's messages were forwarded to, and replays its
	// last announce per swarm (only with a Bus). Both are guarded by mu.
	forwardedTo []string
	replays     map[ID]*replay

	mu      sync.Mutex
	queue   [][]byte // bounded by SendQueue; full means the socket is too slow and is closed
	ping    bool     // a ping is due
	writing bool     // a writer goroutine owns the socket's write side
	closed  bool

	killOnce sync.Once

	peers []binding // peers this socket announced (at most MaxSwarmsPerSocket); guarded by s.mu
}

// elsewhere reports whether c is a socket held by another node.
func (c *conn) elsewhere() bool { return c.origin.node != "" }

// binding is one (swarm, peer) announced on a socket.
type binding struct{ infoHash, peerID ID }

func (c *conn) bound(b binding) bool { return slices.Contains(c.peers, b) }

func (c *conn) bind(b binding) { c.peers = append(c.peers, b) }

func (c *conn) unbind(b binding) {
	if i := slices.Index(c.peers, b); i >= 0 {
		last := len(c.peers) - 1
		c.peers[i] = c.peers[last]
		c.peers[last] = binding{}
		c.peers = c.peers[:last]
	}
}

// send queues one message without ever blocking: a socket whose queue is
// full is closed, so one slow reader cannot hold up the swarm. The socket owns msg from here on.
func (c *conn) send(msg []byte) bool {
	if c.elsewhere() {
		return c.sendRemote(msg)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.s.cfg.SendQueue {
		queued := len(c.queue)
		c.mu.Unlock()
		c.s.log.Info("closing slow socket", "remote", c.remote, "queued", queued)
		c.kill("send queue full")
		return false
	}
	c.queue = append(c.queue, msg)
	c.startWriter()
	c.mu.Unlock()
	return true
}

// reply sends a message from the socket's own reader (a reply to what it read). When no writer
// runs, the reader writes it itself, which saves a goroutine hand-off per reply; it then waits
// only on its own socket, at most one write deadline, like a writer would.
func (c *conn) reply(msg []byte) bool {
	if c.elsewhere() {
		return c.sendRemote(msg)
	}
	c.mu.Lock()
	if c.closed || c.writing {
		c.mu.Unlock()
		return c.send(msg)
	}
	c.writing = true
	c.mu.Unlock()
	ok := c.write(msg)
	c.mu.Lock()
	c.writing = false
	if !c.closed && (len(c.queue) > 0 || c.ping) {
		c.startWriter() // what others sent meanwhile
	}
	c.mu.Unlock()
	return ok
}

// write writes one message and recycles it (a message is sent to one socket only); a failed
// write closes the socket. Only the goroutine that set c.writing may call it.
func (c *conn) write(msg []byte) bool {
	// A write stuck for a whole ping period means the peer is not reading.
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.s.cfg.PingInterval))
	err := c.ws.WriteMessage(websocket.TextMessage, msg) // copies msg into the frame
	recycleMsg(msg)
	if err != nil {
		c.kill("write: " + err.Error())
		return false
	}
	return true
}

// queuePing asks for a ping; the pinger calls it for every socket each PingInterval.
func (c *conn) queuePing() {
	c.mu.Lock()
	if !c.closed {
		c.ping = true
		c.startWriter()
	}
	c.mu.Unlock()
}

// startWriter starts the writer unless one runs. Caller holds c.mu and c is not closed: kill
// sets closed under c.mu, and Close kills every socket before it waits, so this Add happens
// before Close's Wait.
func (c *conn) startWriter() {
	if c.writing {
		return
	}
	c.writing = true
	c.s.wg.Add(1)
	go c.writeLoop()
}

// kill closes the socket; the reader notices and cleans up. It never blocks,
// so it is safe under s.mu.
func (c *conn) kill(why string) {
	c.killOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.queue = nil
		c.mu.Unlock()
		c.s.log.Debug("closing socket", "remote", c.remote, "why", why)
		if c.ws != nil {
			_ = c.ws.Close()
		}
	})
}

func (c *conn) readTimeout() time.Duration { return 2 * c.s.cfg.PingInterval }

func (c *conn) readLoop() {
	defer c.s.wg.Done()
	defer c.s.dropConn(c)
	c.ws.SetReadLimit(c.s.cfg.MaxMessageBytes)
	_ = c.ws.SetReadDeadline(time.Now().Add(c.readTimeout()))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(c.readTimeout()))
	})
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			c.s.log.Debug("socket read ended", "remote", c.remote, "err", err)
			return
		}
		buf := getReadBuf()
		data, err := readMessage(r, *buf)
		if err != nil {
			putReadBuf(buf, data)
			c.s.log.Debug("socket read ended", "remote", c.remote, "err", err)
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(c.readTimeout()))
		// handle keeps nothing of data: what it stores or sends on is copied.
		c.s.handle(c, data)
		putReadBuf(buf, data)
	}
}

// Message buffers are shared by all readers rather than held per socket: an idle socket then
// holds none.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func getReadBuf() *[]byte { return readBufs.Get().(*[]byte) }

// putReadBuf returns data's storage to the pool; a buffer grown past 64 KiB (a larger
// MaxMessageBytes) is left to the collector.
func putReadBuf(buf *[]byte, data []byte) {
	if cap(data) > 64<<10 {
		return
	}
	*buf = data[:0]
	readBufs.Put(buf)
}

// readMessage appends the rest of a message to buf; the read limit is enforced by the websocket.
func readMessage(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// writeLoop writes what is queued, one message at a time, and ends when the queue is empty.
func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	for {
		c.mu.Lock()
		if c.closed || (len(c.queue) == 0 && !c.ping) {
			c.writing = false
			c.queue = nil // an idle socket keeps no queue
			c.mu.Unlock()
			return
		}
		ping := c.ping
		var msg []byte
		if ping {
			c.ping = false
		} else {
			msg = c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
		}
		c.mu.Unlock()
		if ping {
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.s.cfg.PingInterval)); err != nil {
				c.kill("ping: " + err.Error())
			}
			continue
		}
		c.write(msg)
	}
}

// pinger pings every socket each PingInterval; a socket that does not answer within two of
// them is dropped by its reader's deadline.
func (s *Server) pinger() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	var conns []*conn
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		conns = conns[:0]
		for _, c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		for _, c := range conns {
			c.queuePing()
		}
		clear(conns)
	}
}

// dropConn forgets a closed socket and every peer it announced.
func (s *Server) dropConn(c *conn) {
	c.kill("reader done")
	if s.cfg.Bus != nil {
		s.socketClosed(c) // not under s.mu: the bus may deliver in-line
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[c.id] == c {
		delete(s.conns, c.id)
		s.releaseIP(c.ip)
	}
	s.unbindAll(c)
}

// unbindAll takes every peer c announced out of its swarm. Caller holds s.mu.
func (s *Server) unbindAll(c *conn) {
	for _, b := range slices.Clone(c.peers) {
		sw := s.swarms[b.infoHash]
		if sw == nil {
			continue
		}
		if p := sw.peers[b.peerID]; p != nil && p.c == c {
			s.removePeer(b.infoHash, sw, p)
		}
		s.dropIfEmpty(b.infoHash, sw)
	}
}
