package bridge

import (
	"net"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// udpSocketBuffer is the kernel buffer asked for on every UDP socket the bridge uses. The default
// (≈208 KiB) overflows at the rates a 4 MiB SCTP window allows; the drops then wait on SCTP's
// 1 s minimum retransmission timer, which showed as 1 s stalls in the benchmark. Linux caps the
// request at net.core.rmem_max / wmem_max.
const udpSocketBuffer = 4 << 20

type socketBuffers interface {
	SetReadBuffer(bytes int) error
	SetWriteBuffer(bytes int) error
}

// enlargeBuffers is best effort: a kernel that refuses keeps its default and still works.
func enlargeBuffers(c any) {
	if b, ok := c.(socketBuffers); ok {
		_ = b.SetReadBuffer(udpSocketBuffer)
		_ = b.SetWriteBuffer(udpSocketBuffer)
	}
}

// bufferedNet is the standard network with larger UDP socket buffers, for the sockets pion opens
// itself (ephemeral ports per PeerConnection).
type bufferedNet struct{ *stdnet.Net }

func newBufferedNet() (transport.Net, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return bufferedNet{n}, nil
}

func (n bufferedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err == nil {
		enlargeBuffers(c)
	}
	return c, err
}

func (n bufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		enlargeBuffers(c)
	}
	return c, err
}
