package signaling

import (
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// conn is one tracker websocket: exactly one reader and one writer goroutine.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	remote string
	ip     string        // the client IP the socket counts against in MaxSocketsPerIP
	offers *rate.Limiter // OffersPerSecond; nil without a limit

	out      chan []byte // bounded; full means the socket is too slow and is closed
	done     chan struct{}
	killOnce sync.Once

	peers map[binding]struct{} // peers this socket announced; guarded by s.mu
}

// binding is one (swarm, peer) announced on a socket.
type binding struct{ infoHash, peerID ID }

// send queues one message without ever blocking: a socket whose queue is
// full is closed, so one slow reader cannot hold up the swarm.
func (c *conn) send(msg []byte) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.out <- msg:
		return true
	default:
		c.s.log.Info("closing slow socket", "remote", c.remote, "queued", len(c.out))
		c.kill("send queue full")
		return false
	}
}

// kill closes the socket; the reader notices and cleans up. It never blocks,
// so it is safe under s.mu.
func (c *conn) kill(why string) {
	c.killOnce.Do(func() {
		c.s.log.Debug("closing socket", "remote", c.remote, "why", why)
		close(c.done)
		_ = c.ws.Close()
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
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			c.s.log.Debug("socket read ended", "remote", c.remote, "err", err)
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(c.readTimeout()))
		c.s.handle(c, data)
	}
}

func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	// A write stuck for a whole ping period means the peer is not reading.
	writeWait := c.s.cfg.PingInterval
	ping := time.NewTicker(c.s.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.done:
			return
		case msg := <-c.out:
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
				c.kill("write: " + err.Error())
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				c.kill("ping: " + err.Error())
				return
			}
		}
	}
}

// dropConn forgets a closed socket and every peer it announced.
func (s *Server) dropConn(c *conn) {
	c.kill("reader done")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; ok {
		delete(s.conns, c)
		s.releaseIP(c.ip)
	}
	for b := range c.peers {
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
