package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	"github.com/swarmgate/swarmgate/internal/udpbuf"
)

// Bridge owns the pion API, the optional UDP mux and every PeerConnection it creates. It is a
// torrent Listener (Accept, Addr) for answered peers and a Dialer (Dial, DialerNetwork) for
// offered ones.
type Bridge struct {
	cfg      Config
	log      *slog.Logger
	pionLogs logging.LoggerFactory // pion's logs: Config.LoggerFactory or the slog logger
	api      *webrtc.API
	mux      io.Closer // nil without UDPPort
	tag      string    // makes parked addresses unique across Bridges in one process

	acceptCh chan *Conn
	done     chan struct{}
	wg       sync.WaitGroup // goroutines the bridge starts; Close waits for them
	nextID   atomic.Uint64

	bytesRead, bytesWritten atomic.Uint64
	extraUnchokes           atomic.Uint64
	disconnected            atomic.Int64 // peers within DisconnectedGrace
	bufs                    sync.Pool    // *[]byte of MaxMessageSize, for conn reads

	mu      sync.Mutex
	closed  bool
	peers   map[*peer]struct{}
	conns   map[*Conn]struct{}
	byMeta  map[PeerMeta]int // open conns per remote peer
	pcsMeta map[PeerMeta]int // live PeerConnections per remote peer, pending or open
	bySwarm map[[20]byte]int // live PeerConnections per info hash
	parked  map[string]*Conn
}

// Stats is a snapshot of a Bridge.
type Stats struct {
	PeerConnections int // live PeerConnections, pending or open
	OpenConns       int // conns whose channel is open and not closed
	Disconnected    int // PeerConnections whose ICE is disconnected, within DisconnectedGrace
	BytesRead       uint64
	BytesWritten    uint64
	ExtraUnchokes   uint64 // unchokes the wire shim added after a remote's interested
}

var (
	_ net.Addr = Addr("")
	// The torrent client's Listener and dialer.T interfaces, spelled out to avoid importing it.
	_ interface {
		Accept() (net.Conn, error)
		Addr() net.Addr
	} = (*Bridge)(nil)
	_ interface {
		Dial(ctx context.Context, addr string) (net.Conn, error)
		DialerNetwork() string
	} = (*Bridge)(nil)
)

// New validates cfg, builds the pion API and opens the UDP mux if one is configured. A nil log
// discards the bridge's logs.
func New(cfg Config, log *slog.Logger) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.LoopbackOnly {
		cfg.ICEServers = nil // nothing leaves the machine
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "bridge")
	var tag [3]byte
	_, _ = rand.Read(tag[:])
	b := &Bridge{
		cfg:      cfg,
		log:      log,
		tag:      hex.EncodeToString(tag[:]),
		acceptCh: make(chan *Conn),
		done:     make(chan struct{}),
		peers:    make(map[*peer]struct{}),
		conns:    make(map[*Conn]struct{}),
		byMeta:   make(map[PeerMeta]int),
		pcsMeta:  make(map[PeerMeta]int),
		bySwarm:  make(map[[20]byte]int),
		parked:   make(map[string]*Conn),
	}
	b.pionLogs = cfg.LoggerFactory
	if b.pionLogs == nil {
		b.pionLogs = newSlogFactory(log)
	}
	se, mux, err := newSettingEngine(cfg, b.pionLogs)
	if err != nil {
		return nil, err
	}
	b.mux = mux
	b.api = webrtc.NewAPI(webrtc.WithSettingEngine(se))
	log.Debug("bridge ready", "udp_port", cfg.UDPPort, "loopback_only", cfg.LoopbackOnly)
	return b, nil
}

// newSettingEngine is the one place where pion's non-standard knobs are set.
func newSettingEngine(cfg Config, lf logging.LoggerFactory) (webrtc.SettingEngine, io.Closer, error) {
	var se webrtc.SettingEngine
	se.LoggerFactory = lf

	// Detached channels give a plain reader/writer with real deadlines; block-write makes Write
	// return when SCTP took the data rather than when it was queued (honest upload counters, and
	// backpressure for WriteTimeout).
	se.DetachDataChannels()
	se.EnableDataChannelBlockWrite(true)
	se.SetSCTPMaxReceiveBufferSize(cfg.ReceiveBuffer)
	// pion advertises ~1 GiB by default; a bounded size lets each conn read through a buffer of it.
	se.SetSCTPMaxMessageSize(cfg.MaxMessageSize)
	// Negotiated in the SCTP INIT: only used when the remote advertises support.
	se.EnableSCTPZeroChecksum(true)

	if t := cfg.iceTimeouts; t != nil {
		se.SetICETimeouts(t.disconnected, t.failed, t.keepalive)
	}

	loopback := func(name string) bool { return name == "lo" }
	if cfg.LoopbackOnly {
		se.SetInterfaceFilter(loopback)
		se.SetIncludeLoopbackCandidate(true)
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	if len(cfg.PublicIPs) > 0 {
		err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        cfg.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		})
		if err != nil {
			return se, nil, fmt.Errorf("%w: PublicIPs: %w", ErrInvalidConfig, err)
		}
	}
	if cfg.UDPPort == 0 {
		n, err := udpbuf.NewNet()
		if err != nil {
			return se, nil, fmt.Errorf("bridge: network: %w", err)
		}
		se.SetNet(n)
		return se, nil, nil
	}
	muxLog := lf.NewLogger("udpmux")
	var mux ice.UDPMux
	if cfg.UDPAddr != "" {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(cfg.UDPAddr, strconv.Itoa(cfg.UDPPort)))
		if err != nil {
			return se, nil, fmt.Errorf("bridge: listen udp: %w", err)
		}
		udpbuf.Enlarge(pc)
		mux = webrtc.NewICEUDPMux(muxLog, pc)
	} else {
		opts := []ice.UDPMuxFromPortOption{
			ice.UDPMuxFromPortWithLogger(muxLog),
			ice.UDPMuxFromPortWithReadBufferSize(udpbuf.Size),
			ice.UDPMuxFromPortWithWriteBufferSize(udpbuf.Size),
		}
		if cfg.LoopbackOnly {
			opts = append(opts, ice.UDPMuxFromPortWithInterfaceFilter(loopback), ice.UDPMuxFromPortWithLoopback())
		}
		m, err := ice.NewMultiUDPMuxFromPort(cfg.UDPPort, opts...)
		if err != nil {
			return se, nil, fmt.Errorf("bridge: udp mux on port %d: %w", cfg.UDPPort, err)
		}
		mux = m
	}
	se.SetICEUDPMux(mux)
	return se, mux, nil
}

// spawn runs f in a goroutine that Close waits for; it reports false (and does not run f) once
// the bridge is closing.
func (b *Bridge) spawn(f func()) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Go(f)
	return true
}

func (b *Bridge) getBuf(size int) []byte {
	if size == int(b.cfg.MaxMessageSize) {
		if p, ok := b.bufs.Get().(*[]byte); ok {
			return *p
		}
	}
	return make([]byte, size)
}

func (b *Bridge) putBuf(buf []byte) {
	if len(buf) == int(b.cfg.MaxMessageSize) {
		b.bufs.Put(&buf)
	}
}

// Accept returns the next conn of an answered peer. It returns net.ErrClosed after Close.
func (b *Bridge) Accept() (net.Conn, error) {
	select {
	case c := <-b.acceptCh:
		return c, nil
	case <-b.done:
		return nil, net.ErrClosed
	}
}

// Addr is the listener's address: network "webrtc" and no port, so the torrent client never
// takes it for its BitTorrent listen port.
func (b *Bridge) Addr() net.Addr { return listenerAddr }

// DialerNetwork returns "webrtc".
func (b *Bridge) DialerNetwork() string { return Network }

// Dial hands out the conn parked under addr, once. Any other address fails at once, so the
// torrent client's TCP/uTP dialers and this one never wait on each other.
func (b *Bridge) Dial(_ context.Context, addr string) (net.Conn, error) {
	b.mu.Lock()
	c, ok := b.parked[addr]
	if ok {
		delete(b.parked, addr)
		c.parkTimer.Stop()
	}
	b.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownAddr, addr)
	}
	return c, nil
}

// Connected reports whether an open conn (either direction) to this peer in this swarm exists.
func (b *Bridge) Connected(meta PeerMeta) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byMeta[meta] > 0
}

// HasPeer reports whether any PeerConnection to this peer in this swarm is live: an offer
// awaiting its answer, an answer whose channel has not opened yet, or an open conn. An offer to
// such a peer would at best duplicate a connection.
func (b *Bridge) HasPeer(meta PeerMeta) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pcsMeta[meta] > 0
}

// Stats returns a snapshot of the bridge's counters.
func (b *Bridge) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{
		PeerConnections: len(b.peers),
		OpenConns:       len(b.conns),
		Disconnected:    int(b.disconnected.Load()),
		BytesRead:       b.bytesRead.Load(),
		BytesWritten:    b.bytesWritten.Load(),
		ExtraUnchokes:   b.extraUnchokes.Load(),
	}
}

// Close closes every PeerConnection and conn and the UDP mux, and waits for the bridge's
// goroutines. It is idempotent. Close the torrent client first: its accept loop retries a
// failing Accept without pause until the client itself is closed.
func (b *Bridge) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.wg.Wait()
		return nil
	}
	b.closed = true
	close(b.done)
	peers := make([]*peer, 0, len(b.peers))
	for p := range b.peers {
		peers = append(peers, p)
	}
	b.mu.Unlock()

	var closing sync.WaitGroup
	for _, p := range peers {
		closing.Go(p.close)
	}
	closing.Wait()
	b.wg.Wait()
	var err error
	if b.mux != nil {
		err = b.mux.Close()
	}
	b.log.Debug("bridge closed", "peers", len(peers))
	return err
}

// reserve counts a new PeerConnection against MaxPeers.
func (b *Bridge) reserve(p *peer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if err := b.roomLocked(p.meta.InfoHash); err != nil {
		return err
	}
	b.peers[p] = struct{}{}
	b.bySwarm[p.meta.InfoHash]++
	b.pcsMeta[p.meta]++
	return nil
}

// Room reports ErrTooManyPeers (wrapped, saying which limit) when a new PeerConnection in swarm
// infoHash would be refused now, so that callers can decline an offer before doing any work.
func (b *Bridge) Room(infoHash [20]byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.roomLocked(infoHash)
}

func (b *Bridge) roomLocked(infoHash [20]byte) error {
	if len(b.peers) >= b.cfg.MaxPeers {
		return fmt.Errorf("%w (max %d in all)", ErrTooManyPeers, b.cfg.MaxPeers)
	}
	if b.cfg.MaxPeersPerSwarm > 0 && b.bySwarm[infoHash] >= b.cfg.MaxPeersPerSwarm {
		return fmt.Errorf("%w (max %d)", ErrTooManyPeersInSwarm, b.cfg.MaxPeersPerSwarm)
	}
	return nil
}

func (b *Bridge) release(p *peer) {
	b.mu.Lock()
	if _, ok := b.peers[p]; ok {
		delete(b.peers, p)
		if b.bySwarm[p.meta.InfoHash]--; b.bySwarm[p.meta.InfoHash] <= 0 {
			delete(b.bySwarm, p.meta.InfoHash)
		}
		if b.pcsMeta[p.meta]--; b.pcsMeta[p.meta] <= 0 {
			delete(b.pcsMeta, p.meta)
		}
	}
	b.mu.Unlock()
}

// addConn registers an open conn; false once the bridge is closing.
func (b *Bridge) addConn(c *Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.conns[c] = struct{}{}
	b.byMeta[c.meta]++
	return true
}

func (b *Bridge) removeConn(c *Conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.conns[c]; !ok {
		return
	}
	delete(b.conns, c)
	if b.byMeta[c.meta]--; b.byMeta[c.meta] <= 0 {
		delete(b.byMeta, c.meta)
	}
	if c.parkedAt != "" && b.parked[c.parkedAt] == c {
		delete(b.parked, c.parkedAt)
		c.parkTimer.Stop()
	}
}
