package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/swarmgate/swarmgate/signaling"
)

// SignalBus carries tracker messages between the nodes (signaling.Bus): each node listens on
// its own subject, and the swarm of an infohash lives on its home node.
//
// Every message of a swarm homed elsewhere passes here (eight per announce with two answered
// offers, bench/tracker -cluster), so sending and receiving one allocate nothing of their own:
// frames come from a pool (NATS copies them), subjects are made once per node, and the node
// names and client addresses frames carry are interned.
type SignalBus struct {
	n        *Node
	sub      *nats.Subscription
	subjects sync.Map // node name → its subject
	// strs interns the strings of received frames; only the subscription's goroutine uses it
	// (nats.go calls a subscription's handler from one goroutine).
	strs map[string]string
}

var _ interface {
	signaling.Bus
	signaling.SocketCounter
} = (*SignalBus)(nil)

// SignalBus subscribes this node's subject and hands each message that comes to deliver (the
// tracker's Deliver), in the order each sender sent them.
func (n *Node) SignalBus(deliver func(signaling.BusMessage)) (*SignalBus, error) {
	b := &SignalBus{n: n, strs: make(map[string]string)}
	sub, err := n.nc.Subscribe(subjectSignalP+n.cfg.Name, func(msg *nats.Msg) {
		m, err := decodeBusMessage(msg.Data, b.intern)
		if err != nil {
			n.log.Warn("bad tracker message from the bus", "err", err)
			return
		}
		deliver(m)
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: subscribe tracker messages: %w", err)
	}
	// A busy node gets many small messages; the default pending limits would drop them.
	_ = sub.SetPendingLimits(1<<16, 64<<20)
	b.sub = sub
	return b, nil
}

// Self is this node's name.
func (b *SignalBus) Self() string { return b.n.cfg.Name }

// Owner is the infohash's home node.
func (b *SignalBus) Owner(ih signaling.ID) string { return b.n.Home(ih) }

// Send publishes m to node's subject; NATS copies it before returning.
func (b *SignalBus) Send(node string, m signaling.BusMessage) {
	buf := frames.Get().(*[]byte)
	frame := appendBusMessage((*buf)[:0], m)
	err := b.n.nc.Publish(b.subject(node), frame)
	if cap(frame) <= maxPooledFrame {
		*buf = frame[:0]
		frames.Put(buf)
	}
	if err != nil {
		b.n.log.Debug("tracker message not sent", "to", node, "err", err)
	}
}

// frames holds the buffers Send encodes into; a frame over maxPooledFrame (a message near the
// tracker's 64 KiB limit) is left to the collector.
var frames = sync.Pool{New: func() any { b := make([]byte, 0, 2<<10); return &b }}

const maxPooledFrame = 80 << 10

// subject is node's subject, made once (the names are the cluster's members).
func (b *SignalBus) subject(node string) string {
	if s, ok := b.subjects.Load(node); ok {
		return s.(string)
	}
	s, _ := b.subjects.LoadOrStore(node, subjectSignalP+node)
	return s.(string)
}

// maxInterned bounds the interned strings: node names are few, client addresses may be many.
const maxInterned = 4096

// intern returns b as a string, the same one each time.
func (b *SignalBus) intern(s []byte) string {
	if v, ok := b.strs[string(s)]; ok { // no allocation for the lookup
		return v
	}
	if len(b.strs) >= maxInterned {
		clear(b.strs)
	}
	v := string(s)
	b.strs[v] = v
	return v
}

// SocketsElsewhere is what the other nodes last said ip holds (within a heartbeat).
func (b *SignalBus) SocketsElsewhere(ip string) int { return b.n.socketsElsewhere(ip) }

// Close stops taking messages.
func (b *SignalBus) Close() error { return b.sub.Unsubscribe() }

// appendBusMessage appends m's frame to buf: kind, socket, then from, ip and data, each with
// its length.
func appendBusMessage(buf []byte, m signaling.BusMessage) []byte {
	buf = append(buf, byte(m.Kind))
	buf = binary.AppendUvarint(buf, m.Socket)
	buf = binary.AppendUvarint(buf, uint64(len(m.From)))
	buf = append(buf, m.From...)
	buf = binary.AppendUvarint(buf, uint64(len(m.IP)))
	buf = append(buf, m.IP...)
	buf = binary.AppendUvarint(buf, uint64(len(m.Data)))
	return append(buf, m.Data...)
}

var errBadFrame = errors.New("bad frame")

// decodeBusMessage reads a frame; Data is part of buf, From and IP are made by str.
func decodeBusMessage(buf []byte, str func([]byte) string) (signaling.BusMessage, error) {
	var m signaling.BusMessage
	if len(buf) < 1 {
		return m, errBadFrame
	}
	m.Kind, buf = signaling.BusKind(buf[0]), buf[1:]
	sock, k := binary.Uvarint(buf)
	if k <= 0 {
		return m, errBadFrame
	}
	m.Socket, buf = sock, buf[k:]
	var fields [3][]byte
	for i := range fields {
		l, k := binary.Uvarint(buf)
		if k <= 0 || l > uint64(len(buf)-k) {
			return m, errBadFrame
		}
		fields[i], buf = buf[k:k+int(l)], buf[k+int(l):]
	}
	if len(buf) != 0 {
		return m, errBadFrame
	}
	m.From, m.IP, m.Data = str(fields[0]), str(fields[1]), fields[2]
	return m, nil
}
