package bridge

import (
	"encoding/binary"

	pp "github.com/anacrolix/torrent/peer_protocol"
)

// The peer-wire shim. webtorrent starts a 5 s choke timer when it sends interested, and only an
// unchoke that arrives afterwards clears it; the torrent client unchokes once, right after the
// handshake, before the browser has metadata or is interested, and never repeats it. Without a
// repeat, webtorrent drops the seeder whenever another peer is waiting (REFERENCE §3.6). So each
// direction of a conn is followed message by message, and an interested from the remote while our
// last sent choke state is "unchoked" makes the conn write one extra unchoke at the next message
// boundary of our output.

// handshakeLen is the handshake's length: the protocol string with its length byte, reserved
// bytes, info hash, peer id.
const handshakeLen = len(pp.Protocol) + 8 + 20 + 20

var unchokeMsg = []byte{0, 0, 0, 1, byte(pp.Unchoke)}

// wireParser follows the message boundaries of one direction of a plain (not MSE-obfuscated)
// BitTorrent stream. It only reads lengths and ids, so it costs a few operations per message.
type wireParser struct {
	started bool
	off     bool  // not a plain BitTorrent stream: stop following it
	skip    int64 // bytes left of the handshake or of the current message's payload
	hdr     [5]byte
	nhdr    int
}

// atBoundary reports whether the next byte starts a new message.
func (w *wireParser) atBoundary() bool {
	return w.started && !w.off && w.skip == 0 && w.nhdr == 0
}

// feed follows p, calling onMsg with the id of each message whose header completes in p. With
// stop set it returns as soon as a message boundary is reached (after at least one byte). It
// returns the number of bytes consumed.
func (w *wireParser) feed(p []byte, stop bool, onMsg func(id pp.MessageType)) int {
	n := 0
	for n < len(p) {
		if w.off {
			return len(p)
		}
		if !w.started {
			if p[n] != pp.Protocol[0] {
				w.off = true
				return len(p)
			}
			w.started = true
			w.skip = int64(handshakeLen)
		}
		if w.skip > 0 {
			k := min(w.skip, int64(len(p)-n))
			w.skip -= k
			n += int(k)
			if w.skip == 0 && stop {
				return n
			}
			continue
		}
		w.hdr[w.nhdr] = p[n]
		w.nhdr++
		n++
		switch w.nhdr {
		case 4:
			if binary.BigEndian.Uint32(w.hdr[:4]) == 0 { // keep-alive
				w.nhdr = 0
				if stop {
					return n
				}
			}
		case 5:
			w.nhdr = 0
			w.skip = int64(binary.BigEndian.Uint32(w.hdr[:4])) - 1
			if onMsg != nil {
				onMsg(pp.MessageType(w.hdr[4]))
			}
			if w.skip == 0 && stop {
				return n
			}
		}
	}
	return n
}
