package cluster

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/internal/peertest"
	"github.com/swarmgate/swarmgate/signaling"
)

// startBusPair starts two routed nodes, a and b, and a bus on each; b's hands what it gets to
// deliver.
func startBusPair(tb testing.TB, deliver func(signaling.BusMessage)) (*SignalBus, *SignalBus) {
	tb.Helper()
	addrs := peertest.FreeLoopbackAddrs(tb, 2)
	var nodes []*Node
	var buses []*SignalBus
	for i, name := range []string{"a", "b"} {
		n := startNode(tb, name, addrs[i], addrs, "s")
		f := func(signaling.BusMessage) {}
		if name == "b" {
			f = deliver
		}
		bus, err := n.SignalBus(f)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = bus.Close() })
		n.Join()
		nodes, buses = append(nodes, n), append(buses, bus)
	}
	for _, n := range nodes {
		deadline := time.Now().Add(waitBudget)
		for memberNames(n) != "a,b" {
			if time.Now().After(deadline) {
				tb.Fatalf("%s sees %s", n.Self(), memberNames(n))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return buses[0], buses[1]
}

// TestSignalBusDeliversEveryMessageIntact: messages sent back to back, each in a buffer the
// sender reuses at once, arrive in order and unchanged (Send must be done with them when it
// returns, and must not hand a frame it still uses to NATS).
func TestSignalBusDeliversEveryMessageIntact(t *testing.T) {
	const n = 2000
	got := make(chan signaling.BusMessage, n)
	a, _ := startBusPair(t, func(m signaling.BusMessage) { got <- m })
	data := make([]byte, 0, 4096)
	for i := range n {
		data = fmt.Appendf(data[:0], `{"n":%d,"pad":"%s"}`, i, bytes.Repeat([]byte{'x'}, i%3000))
		a.Send("b", signaling.BusMessage{Kind: signaling.BusToSocket, From: "a", Socket: uint64(i), IP: fmt.Sprint("ip", i%7), Data: data})
		clear(data[:cap(data)]) // the caller's buffer is reused at once
	}
	for i := range n {
		select {
		case m := <-got:
			want := fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, bytes.Repeat([]byte{'x'}, i%3000))
			if m.Kind != signaling.BusToSocket || m.From != "a" || m.Socket != uint64(i) || m.IP != fmt.Sprint("ip", i%7) || string(m.Data) != want {
				t.Fatalf("message %d: %+v", i, m)
			}
		case <-time.After(waitBudget):
			t.Fatalf("%d of %d messages arrived", i, n)
		}
	}
}

// BenchmarkSignalBus: one message of an offer's size from one node's tracker to another's
// through both embedded NATS servers and their route, as across-nodes in bench/tracker -cluster
// sends eight per announce.
func BenchmarkSignalBus(b *testing.B) {
	var received atomic.Int64
	a, _ := startBusPair(b, func(signaling.BusMessage) { received.Add(1) })
	data := bytes.Repeat([]byte{'o'}, 700)
	m := signaling.BusMessage{Kind: signaling.BusToSwarm, From: "gateway-1", Socket: 12345, IP: "192.0.2.10", Data: data}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		a.Send("b", m)
		// A window of messages in flight, as many sockets' messages are.
		for int64(i)-received.Load() > 256 {
			time.Sleep(10 * time.Microsecond)
		}
	}
	for received.Load() < int64(b.N) {
		time.Sleep(10 * time.Microsecond)
	}
}

// TestSignalBusOwnAllocations: framing, subjects and decoding allocate nothing once warm; what
// a message costs beyond that is NATS's.
func TestSignalBusOwnAllocations(t *testing.T) {
	a, _ := startBusPair(t, func(signaling.BusMessage) {})
	m := signaling.BusMessage{Kind: signaling.BusToSwarm, From: "gateway-1", Socket: 1 << 33, IP: "192.0.2.10", Data: bytes.Repeat([]byte{'o'}, 700)}
	buf := make([]byte, 0, 2048)
	var frame []byte
	if n := testing.AllocsPerRun(100, func() { frame = appendBusMessage(buf[:0], m) }); n != 0 {
		t.Errorf("framing: %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = a.subject("b") }); n != 0 {
		t.Errorf("subject: %v allocations", n)
	}
	var got signaling.BusMessage
	var err error
	if n := testing.AllocsPerRun(100, func() { got, err = decodeBusMessage(frame, a.intern) }); n != 0 {
		t.Errorf("decoding: %v allocations", n)
	}
	if err != nil || got.From != m.From || got.IP != m.IP || !bytes.Equal(got.Data, m.Data) {
		t.Fatalf("decoded %+v, %v", got, err)
	}
}
