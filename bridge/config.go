package bridge

import (
	"fmt"
	"net"
	"time"

	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// Defaults for the zero values of Config.
const (
	DefaultReceiveBuffer  = 4 << 20 // pion's 1 MiB caps throughput over real RTTs (≈21 MB/s at 50 ms)
	DefaultMaxMessageSize = 64 << 10
	DefaultConnectTimeout = 30 * time.Second
	DefaultWriteTimeout   = 20 * time.Second
	DefaultMaxPeers       = 2000

	// Network is the net.Addr network of every address the bridge returns and its DialerNetwork.
	Network = "webrtc"

	minMessageSize = 1 << 10
	maxMessageSize = 16 << 20
)

// Config configures a Bridge. The zero value of each field means its default.
type Config struct {
	ICEServers []webrtc.ICEServer
	// UDPPort > 0 serves every PeerConnection from this one UDP port (ICE UDP mux); 0 uses
	// ephemeral ports per PeerConnection.
	UDPPort int
	// UDPAddr is the IP the mux listens on; empty means every interface.
	UDPAddr string
	// PublicIPs are advertised instead of the local host addresses (NAT 1:1).
	PublicIPs []string
	// LoopbackOnly is for tests: only the "lo" interface, loopback candidates, no mDNS, and
	// ICEServers are ignored so nothing leaves the machine.
	LoopbackOnly bool
	// ReceiveBuffer is the SCTP receive buffer per PeerConnection.
	ReceiveBuffer uint32
	// MaxMessageSize is the largest data-channel message we advertise and accept, and the size of
	// each conn's read buffer; writes are split into chunks no larger than it.
	MaxMessageSize uint32
	// ConnectTimeout closes a PeerConnection whose channel has not opened by then, and a conn not
	// claimed by Accept or Dial within the same time after it opened.
	ConnectTimeout time.Duration
	// WriteTimeout bounds each Write so one slow browser cannot stall the others; on expiry the
	// conn is closed.
	WriteTimeout time.Duration
	// MaxPeers bounds live PeerConnections; Answer and Offer return ErrTooManyPeers above it.
	MaxPeers int
	// MaxPeersPerSwarm bounds live PeerConnections of one info hash; Answer and Offer return
	// ErrTooManyPeers above it. 0 means only MaxPeers applies.
	MaxPeersPerSwarm int
	// OnDialable is called (from a pion goroutine; keep it short) when an offered channel has
	// opened: make the torrent client dial addr, e.g. t.AddPeers([]torrent.PeerInfo{{Addr:
	// bridge.Addr(addr), Id: meta.PeerID, Source: "webrtc"}}). Required for Offer.
	OnDialable func(meta PeerMeta, addr string)
	// LoggerFactory receives pion's logs; by default they go to the Bridge's slog logger, warn
	// and error as they are, info at debug, debug and trace below slog's debug (not written).
	LoggerFactory logging.LoggerFactory
}

// PeerMeta says which swarm a remote peer belongs to and who it is, as learnt by signaling.
type PeerMeta struct {
	InfoHash, PeerID [20]byte
}

// Validate reports the first problem with c, wrapped in ErrInvalidConfig.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.UDPPort < 0 || c.UDPPort > 65535:
		return bad("UDPPort %d out of range", c.UDPPort)
	case c.UDPAddr != "" && net.ParseIP(c.UDPAddr) == nil:
		return bad("UDPAddr %q is not an IP address", c.UDPAddr)
	case c.UDPAddr != "" && c.UDPPort == 0:
		return bad("UDPAddr needs UDPPort")
	case c.MaxMessageSize != 0 && (c.MaxMessageSize < minMessageSize || c.MaxMessageSize > maxMessageSize):
		return bad("MaxMessageSize %d not within [%d, %d]", c.MaxMessageSize, minMessageSize, maxMessageSize)
	case c.ReceiveBuffer != 0 && c.ReceiveBuffer < c.withDefaults().MaxMessageSize:
		return bad("ReceiveBuffer %d smaller than MaxMessageSize", c.ReceiveBuffer)
	case c.ConnectTimeout < 0:
		return bad("negative ConnectTimeout")
	case c.WriteTimeout < 0:
		return bad("negative WriteTimeout")
	case c.MaxPeers < 0:
		return bad("negative MaxPeers")
	case c.MaxPeersPerSwarm < 0:
		return bad("negative MaxPeersPerSwarm")
	}
	for _, ip := range c.PublicIPs {
		if net.ParseIP(ip) == nil {
			return bad("PublicIPs: %q is not an IP address", ip)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.ReceiveBuffer == 0 {
		c.ReceiveBuffer = DefaultReceiveBuffer
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxPeers == 0 {
		c.MaxPeers = DefaultMaxPeers
	}
	if c.LoopbackOnly {
		c.ICEServers = nil
	}
	return c
}
