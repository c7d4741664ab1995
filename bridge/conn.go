package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	pp "github.com/anacrolix/torrent/peer_protocol"
	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"
)

// Conn is one open, detached data channel as a net.Conn. Reads go through a buffer of a whole
// message (the torrent client reads 20 bytes first; a detached channel fails a read shorter than
// the message). Writes are split into messages the remote accepts and are bounded by
// WriteTimeout. Deadlines never return errors (the torrent client panics on one). Closing the
// conn closes its PeerConnection.
type Conn struct {
	b      *Bridge
	p      *peer
	id     uint64
	meta   PeerMeta
	rwc    datachannel.ReadWriteCloserDeadliner
	local  Addr
	remote Addr
	chunk  int // largest message written: min(remote max-message-size, our MaxMessageSize)

	// Guarded by b.mu.
	parkedAt  string
	parkTimer *time.Timer

	closeOnce sync.Once
	closed    chan struct{}

	readMu   sync.Mutex
	readSize int    // largest message expected: MaxMessageSize unless the remote sent larger
	rbuf     []byte // holds the rest of a message the caller's buffer was too small for
	rpos     int
	rend     int
	in       wireParser

	writeMu       sync.Mutex
	out           wireParser
	injectPending bool         // an extra unchoke goes out at the next message boundary
	writeDeadline atomic.Int64 // unix nanoseconds, 0 = none

	unchoked    atomic.Bool // the last choke state we sent
	wantUnchoke atomic.Bool // the remote sent interested while unchoked
	injecting   atomic.Bool // an injector goroutine is running

	bytesRead, bytesWritten atomic.Uint64
	extraUnchokes           atomic.Uint64
}

// ConnStats are a conn's counters.
type ConnStats struct {
	BytesRead     uint64
	BytesWritten  uint64 // includes ExtraUnchokes × 5
	ExtraUnchokes uint64 // unchokes written by the wire shim
}

var _ net.Conn = (*Conn)(nil)

func newConn(p *peer, pc *webrtc.PeerConnection, rwc datachannel.ReadWriteCloserDeadliner) *Conn {
	c := &Conn{
		b:      p.b,
		p:      p,
		id:     p.id,
		meta:   p.meta,
		rwc:    rwc,
		chunk:  int(p.b.cfg.MaxMessageSize),
		closed: make(chan struct{}),

		readSize: int(p.b.cfg.MaxMessageSize),
	}
	if sctp := pc.SCTP(); sctp != nil {
		// The association's max is the remote's advertised max-message-size (65535 if absent).
		if remoteMax := int(sctp.GetCapabilities().MaxMessageSize); remoteMax > 0 && remoteMax < c.chunk {
			c.chunk = remoteMax
		}
		if dtls := sctp.Transport(); dtls != nil {
			if pair, err := dtls.ICETransport().GetSelectedCandidatePair(); err == nil && pair != nil {
				c.local, c.remote = candidateAddr(pair.Local), candidateAddr(pair.Remote)
			}
		}
	}
	return c
}

// Meta is the remote's swarm and peer id, as given to Answer or Offer.
func (c *Conn) Meta() PeerMeta { return c.meta }

// Stats returns the conn's counters.
func (c *Conn) Stats() ConnStats {
	return ConnStats{
		BytesRead:     c.bytesRead.Load(),
		BytesWritten:  c.bytesWritten.Load(),
		ExtraUnchokes: c.extraUnchokes.Load(),
	}
}

// LocalAddr is the selected ICE candidate pair's local ip:port, network "webrtc".
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the selected ICE candidate pair's remote ip:port, network "webrtc".
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

func (c *Conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// Read reads from the current message, fetching the next one when it is used up.
func (c *Conn) Read(p []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.rpos < c.rend {
		n := copy(p, c.rbuf[c.rpos:c.rend])
		if c.rpos += n; c.rpos == c.rend {
			c.releaseBuf()
		}
		return n, nil
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		direct := len(p) >= c.readSize // p holds any message we accept: skip the copy
		buf := p
		if !direct {
			if c.rbuf == nil {
				c.rbuf = c.b.getBuf(c.readSize)
			}
			buf = c.rbuf
		}
		n, err := c.rwc.Read(buf)
		if errors.Is(err, io.ErrShortBuffer) && c.readSize < maxMessageSize {
			// The remote ignored our max-message-size; the message stays queued, so grow and retry.
			c.readSize = min(2*c.readSize, maxMessageSize)
			c.releaseBuf()
			continue
		}
		if err != nil {
			c.releaseBuf()
			return 0, c.readErr(err)
		}
		if n == 0 { // an empty message
			continue
		}
		c.in.feed(buf[:n], false, c.onInMsg)
		c.bytesRead.Add(uint64(n))
		c.b.bytesRead.Add(uint64(n))
		if direct {
			return n, nil
		}
		k := copy(p, buf[:n])
		if k == n {
			c.releaseBuf()
		} else {
			c.rpos, c.rend = k, n
		}
		return k, nil
	}
}

// releaseBuf returns the drained read buffer: an idle conn holds none (thousands of browsers ×
// 64 KiB would add up).
func (c *Conn) releaseBuf() {
	if c.rbuf != nil {
		c.b.putBuf(c.rbuf)
	}
	c.rbuf, c.rpos, c.rend = nil, 0, 0
}

func (c *Conn) readErr(err error) error {
	switch {
	case c.isClosed():
		return net.ErrClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		return os.ErrDeadlineExceeded // a net.Error with Timeout() true
	case errors.Is(err, io.EOF):
		return io.EOF
	}
	return fmt.Errorf("bridge: read: %w", err)
}

// Write writes p as one or more messages, inserting an extra unchoke at a message boundary when
// the wire shim asked for one.
func (c *Conn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.isClosed() {
		return 0, net.ErrClosed
	}
	if c.wantUnchoke.Swap(false) {
		c.injectPending = true
	}
	written := 0
	for {
		if err := c.injectAtBoundary(); err != nil {
			return written, err
		}
		if len(p) == 0 {
			return written, nil
		}
		// While an unchoke is pending, stop at the next boundary to insert it there.
		n := c.out.feed(p, c.injectPending, c.onOutMsg)
		if err := c.send(p[:n]); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
}

// injectAtBoundary writes the pending unchoke if our output is between messages and our last
// sent state is still unchoked. Called with writeMu held.
func (c *Conn) injectAtBoundary() error {
	if !c.injectPending || !c.out.atBoundary() {
		return nil
	}
	c.injectPending = false
	if !c.unchoked.Load() {
		return nil
	}
	if err := c.send(unchokeMsg); err != nil {
		return err
	}
	c.extraUnchokes.Add(1)
	c.b.extraUnchokes.Add(1)
	return nil
}

// send writes p in messages of at most chunk bytes under one deadline: the caller's, or
// WriteTimeout from now if that is sooner. Called with writeMu held.
func (c *Conn) send(p []byte) error {
	now := time.Now()
	dl := now.Add(c.b.cfg.WriteTimeout)
	own := true // the deadline is WriteTimeout's, not the caller's
	if ns := c.writeDeadline.Load(); ns != 0 {
		user := time.Unix(0, ns)
		if !user.After(now) {
			return os.ErrDeadlineExceeded
		}
		if user.Before(dl) {
			dl, own = user, false
		}
	}
	_ = c.rwc.SetWriteDeadline(dl)
	for len(p) > 0 {
		n := min(len(p), c.chunk)
		if _, err := c.rwc.Write(p[:n]); err != nil {
			return c.writeErr(err, own)
		}
		c.bytesWritten.Add(uint64(n))
		c.b.bytesWritten.Add(uint64(n))
		p = p[n:]
	}
	return nil
}

func (c *Conn) writeErr(err error, own bool) error {
	switch {
	case c.isClosed():
		return net.ErrClosed
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		if !own {
			return os.ErrDeadlineExceeded
		}
		// One slow reader must not hold anyone's writer: drop it.
		c.p.log.Info("write timeout, closing conn", "timeout", c.b.cfg.WriteTimeout, "remote", c.remote)
		_ = c.Close()
		return fmt.Errorf("%w: %w", ErrWriteTimeout, os.ErrDeadlineExceeded)
	}
	return fmt.Errorf("bridge: write: %w", err)
}

func (c *Conn) onOutMsg(id pp.MessageType) {
	switch id {
	case pp.Choke:
		c.unchoked.Store(false)
	case pp.Unchoke:
		c.unchoked.Store(true)
	}
}

func (c *Conn) onInMsg(id pp.MessageType) {
	if id == pp.Interested && c.unchoked.Load() {
		c.requestUnchoke()
	}
}

// requestUnchoke gets an unchoke written soon. The reader must not write itself: with both sides
// blocked in writes to each other, readers waiting on writers would deadlock. So a goroutine
// waits for the write lock; the next Write would also pick the request up.
func (c *Conn) requestUnchoke() {
	c.wantUnchoke.Store(true)
	if !c.injecting.CompareAndSwap(false, true) {
		return
	}
	if !c.b.spawn(c.injectUnchoke) {
		c.injecting.Store(false)
	}
}

func (c *Conn) injectUnchoke() {
	for {
		c.writeMu.Lock()
		if c.wantUnchoke.Swap(false) {
			c.injectPending = true
		}
		if !c.isClosed() {
			if err := c.injectAtBoundary(); err != nil {
				c.p.log.Debug("write extra unchoke", "err", err)
			}
		}
		c.writeMu.Unlock()
		c.injecting.Store(false)
		if !c.wantUnchoke.Load() || !c.injecting.CompareAndSwap(false, true) {
			return
		}
	}
}

// SetDeadline sets both deadlines. It never fails.
func (c *Conn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline makes a blocked or future Read return os.ErrDeadlineExceeded at t. It never
// fails.
func (c *Conn) SetReadDeadline(t time.Time) error {
	_ = c.rwc.SetReadDeadline(t)
	return nil
}

// SetWriteDeadline bounds future Writes (WriteTimeout still applies). It never fails.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.writeDeadline.Store(ns)
	return nil
}

// Close closes the channel (the remote's reads end) and then, in the background, the
// PeerConnection. Idempotent.
func (c *Conn) Close() error {
	if c.shut() {
		c.p.closeAsync()
	}
	return nil
}

// shut closes the channel and unregisters the conn; it reports whether this call did it.
func (c *Conn) shut() bool {
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.closed)
		_ = c.rwc.Close()
		// A pending read deadline keeps a timer goroutine in the SCTP stream until it expires (the
		// torrent client sets 150 s ones); clearing it ends that goroutine now.
		_ = c.rwc.SetReadDeadline(time.Time{})
		c.b.removeConn(c)
	})
	return first
}

// park keeps an offered conn under a fresh undialable address until Dial claims it, and tells
// the owner about it.
func (b *Bridge) park(c *Conn) {
	addr := fmt.Sprintf("%s-%s-%d", Network, b.tag, c.id) // no port: TCP/uTP dialers fail at once
	b.mu.Lock()
	if _, open := b.conns[c]; !open {
		b.mu.Unlock()
		return
	}
	c.parkedAt = addr
	b.parked[addr] = c
	c.parkTimer = time.AfterFunc(b.cfg.ConnectTimeout, func() {
		b.spawn(func() {
			b.mu.Lock()
			expired := b.parked[addr] == c
			delete(b.parked, addr)
			b.mu.Unlock()
			if expired {
				c.p.log.Debug("parked conn not dialed in time", "addr", addr)
				_ = c.Close()
			}
		})
	})
	b.mu.Unlock()
	b.cfg.OnDialable(c.meta, addr)
}

// deliver hands an answered conn to Accept, or closes it if nobody accepts in time.
func (b *Bridge) deliver(c *Conn) {
	ok := b.spawn(func() {
		t := time.NewTimer(b.cfg.ConnectTimeout)
		defer t.Stop()
		select {
		case b.acceptCh <- c:
		case <-c.closed:
		case <-b.done:
			_ = c.Close()
		case <-t.C:
			c.p.log.Debug("conn not accepted in time")
			_ = c.Close()
		}
	})
	if !ok {
		_ = c.Close()
	}
}
