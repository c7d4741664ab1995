package bridge

import (
	"net"
	"strconv"

	"github.com/pion/webrtc/v4"
)

// Addr is the net.Addr of everything the bridge hands out. Its Network is "webrtc" so the
// torrent client never mistakes a browser for a uTP/TCP peer (nor advertises it as dialable);
// a conn's String is the selected ICE candidate pair's ip:port, a parked conn's the undialable
// name passed to OnDialable. Addr(s) also serves as a torrent.PeerInfo Addr.
type Addr string

var _ net.Addr = Addr("")

// Network returns "webrtc".
func (Addr) Network() string { return Network }

func (a Addr) String() string { return string(a) }

// listenerAddr has no port, so the torrent client never announces it as a BitTorrent port.
const listenerAddr = Addr(Network)

// candidateAddr is "ip:port", or "" when the candidate is missing or has port 0 (the torrent
// client counts port 0 as a bad peer).
func candidateAddr(c *webrtc.ICECandidate) Addr {
	if c == nil || c.Port == 0 || c.Address == "" {
		return ""
	}
	return Addr(net.JoinHostPort(c.Address, strconv.Itoa(int(c.Port))))
}
