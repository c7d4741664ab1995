// Package udpbuf gives pion's UDP sockets kernel buffers large enough for a 4 MiB SCTP window.
// The default (≈208 KiB on Linux) overflows at the rates such a window allows; the drops then wait
// on SCTP's 1 s minimum retransmission timer, which showed as 1 s stalls in the benchmark. It is
// shared by the bridge and by the raw data-channel measurement that the bridge is compared with.
package udpbuf

import (
	"net"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// Size is the kernel buffer asked for on every socket, each way. Linux caps the request at
// net.core.rmem_max / wmem_max.
const Size = 4 << 20

type socketBuffers interface {
	SetReadBuffer(bytes int) error
	SetWriteBuffer(bytes int) error
}

// Enlarge asks for Size on c if it is a socket; it is best effort: a kernel that refuses keeps
// its default and still works.
func Enlarge(c any) {
	if b, ok := c.(socketBuffers); ok {
		_ = b.SetReadBuffer(Size)
		_ = b.SetWriteBuffer(Size)
	}
}

// Net is the standard network with enlarged UDP sockets, for the sockets pion opens itself
// (ephemeral ports per PeerConnection): webrtc.SettingEngine.SetNet(net).
type Net struct{ *stdnet.Net }

// NewNet returns the standard network with enlarged UDP sockets.
func NewNet() (transport.Net, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return Net{n}, nil
}

// ListenPacket is stdnet's, with Enlarge applied.
func (n Net) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err == nil {
		Enlarge(c)
	}
	return c, err
}

// ListenUDP is stdnet's, with Enlarge applied.
func (n Net) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		Enlarge(c)
	}
	return c, err
}
