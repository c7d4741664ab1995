package bridge

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

const (
	// Network is the net.Addr network of every address the bridge returns and its DialerNetwork.
	Network = "webrtc"

	minMessageSize = 1 << 10
	maxMessageSize = 16 << 20
)

// Config configures a Bridge. Start from DefaultConfig.
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
	// ReceiveBuffer is the SCTP receive buffer per PeerConnection; pion's 1 MiB caps throughput
	// over real RTTs (≈21 MB/s at 50 ms).
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
	// DisconnectedGrace is how long a PeerConnection may stay ICE-disconnected (pion: nothing
	// heard from the remote for 5 s) before it is closed; one whose ICE reconnects meanwhile is
	// kept. Brief losses are common (Wi-Fi roaming, a busy link) and ICE recovers from them; a
	// killed tab never comes back. pion declares ICE failed 25 s after disconnected, which closes
	// the PeerConnection at once, so a longer grace changes nothing.
	DisconnectedGrace time.Duration
	// MaxPeers bounds live PeerConnections; Answer and Offer return ErrTooManyPeers above it.
	MaxPeers int
	// MaxPeersPerSwarm bounds live PeerConnections of one info hash; Answer and Offer return
	// ErrTooManyPeers above it. 0 means only MaxPeers applies.
	MaxPeersPerSwarm int
	// OnDialable is called (from a pion goroutine; keep it short) when an offered channel has
	// opened: make the torrent client dial addr, e.g. t.AddPeers([]torrent.PeerInfo{{Addr:
	// bridge.Addr(addr), Id: meta.PeerID, Source: "webrtc"}}). Required for Offer.
	OnDialable func(meta PeerMeta, addr string)
	// LoggerFactory receives pion's logs; nil sends them to the Bridge's slog logger, warn and
	// error as they are, info at debug, debug and trace below slog's debug (not written).
	LoggerFactory logging.LoggerFactory

	// iceTimeouts, when set, replaces pion's ICE timeouts, so that tests see an interruption
	// within a second.
	iceTimeouts *iceTimeouts
}

// iceTimeouts are pion's SettingEngine.SetICETimeouts arguments.
type iceTimeouts struct {
	disconnected, failed, keepalive time.Duration
}

// DefaultConfig returns the defaults: ephemeral UDP ports, every interface, no ICE servers.
func DefaultConfig() Config {
	return Config{
		ReceiveBuffer:  4 << 20,
		MaxMessageSize: 64 << 10,
		ConnectTimeout: 30 * time.Second,
		WriteTimeout:   20 * time.Second,
		// With pion's 5 s to disconnected, a silent remote is dropped after 20 s of silence,
		// before pion's 30 s to failed.
		DisconnectedGrace: 15 * time.Second,
		MaxPeers:          2000,
	}
}

// PeerMeta says which swarm a remote peer belongs to and who it is, as learnt by signaling.
type PeerMeta struct {
	InfoHash, PeerID [20]byte
}

// Validate reports every unusable field, each with the reason and wrapped in ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}
	if c.UDPPort < 0 || c.UDPPort > 65535 {
		bad("UDPPort", "must be 0..65535, got %d", c.UDPPort)
	}
	if c.UDPAddr != "" {
		if net.ParseIP(c.UDPAddr) == nil {
			bad("UDPAddr", "%q is not an IP address", c.UDPAddr)
		}
		if c.UDPPort == 0 {
			bad("UDPAddr", "needs UDPPort (ephemeral ports listen on every interface)")
		}
	}
	for _, ip := range c.PublicIPs {
		if net.ParseIP(ip) == nil {
			bad("PublicIPs", "%q is not an IP address", ip)
		}
	}
	if c.MaxMessageSize < minMessageSize || c.MaxMessageSize > maxMessageSize {
		bad("MaxMessageSize", "must be within [%d, %d], got %d", minMessageSize, maxMessageSize, c.MaxMessageSize)
	}
	if c.ReceiveBuffer < c.MaxMessageSize {
		bad("ReceiveBuffer", "(%d) must be >= MaxMessageSize (%d)", c.ReceiveBuffer, c.MaxMessageSize)
	}
	positive := func(field string, d time.Duration) {
		if d <= 0 {
			bad(field, "must be > 0, got %v", d)
		}
	}
	positive("ConnectTimeout", c.ConnectTimeout)
	positive("WriteTimeout", c.WriteTimeout)
	positive("DisconnectedGrace", c.DisconnectedGrace)
	if c.MaxPeers <= 0 {
		bad("MaxPeers", "must be > 0, got %d", c.MaxPeers)
	}
	if c.MaxPeersPerSwarm < 0 {
		bad("MaxPeersPerSwarm", "must be >= 0 (0 = only MaxPeers), got %d", c.MaxPeersPerSwarm)
	}
	return errors.Join(errs...)
}
