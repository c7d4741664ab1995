package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/swarmgate/swarmgate/signaling"
)

// SignalBus carries tracker messages between the nodes (signaling.Bus): each node listens on
// its own subject, and the swarm of an infohash lives on its home node.
type SignalBus struct {
	n   *Node
	sub *nats.Subscription
}

var _ interface {
	signaling.Bus
	signaling.SocketCounter
} = (*SignalBus)(nil)

// SignalBus subscribes this node's subject and hands each message that comes to deliver (the
// tracker's Deliver), in the order each sender sent them.
func (n *Node) SignalBus(deliver func(signaling.BusMessage)) (*SignalBus, error) {
	b := &SignalBus{n: n}
	sub, err := n.nc.Subscribe(subjectSignalP+n.cfg.Name, func(msg *nats.Msg) {
		m, err := decodeBusMessage(msg.Data)
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
	if err := b.n.nc.Publish(subjectSignalP+node, encodeBusMessage(m)); err != nil {
		b.n.log.Debug("tracker message not sent", "to", node, "err", err)
	}
}

// SocketsElsewhere is what the other nodes last said ip holds (within a heartbeat).
func (b *SignalBus) SocketsElsewhere(ip string) int { return b.n.socketsElsewhere(ip) }

// Close stops taking messages.
func (b *SignalBus) Close() error { return b.sub.Unsubscribe() }

// encodeBusMessage frames m: kind, socket, then from, ip and data, each with its length.
func encodeBusMessage(m signaling.BusMessage) []byte {
	buf := make([]byte, 0, 1+binary.MaxVarintLen64*4+len(m.From)+len(m.IP)+len(m.Data))
	buf = append(buf, byte(m.Kind))
	buf = binary.AppendUvarint(buf, m.Socket)
	for _, field := range [][]byte{[]byte(m.From), []byte(m.IP), m.Data} {
		buf = binary.AppendUvarint(buf, uint64(len(field)))
		buf = append(buf, field...)
	}
	return buf
}

var errBadFrame = errors.New("bad frame")

func decodeBusMessage(buf []byte) (signaling.BusMessage, error) {
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
	m.From, m.IP, m.Data = string(fields[0]), string(fields[1]), fields[2]
	return m, nil
}
