package bridge

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func freeUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// Every PeerConnection of a Bridge with UDPPort set is served from that one port.
func TestUDPMuxSharesOnePort(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr string
	}{{"all interfaces", ""}, {"one address", "127.0.0.1"}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := guard(t, 20*time.Second)
			port := freeUDPPort(t)
			ans := newBridge(t, func(c *Config) { c.UDPPort, c.UDPAddr = port, tc.addr })
			offA, offB := newBridge(t, nil), newBridge(t, nil)
			ocA, acA := connect(t, ctx, offA, ans)
			ocB, acB := connect(t, ctx, offB, ans)
			if ans.Stats().PeerConnections != 2 {
				t.Fatalf("stats %+v", ans.Stats())
			}
			for _, c := range []*Conn{acA, acB} {
				if _, p, _ := net.SplitHostPort(c.LocalAddr().String()); p != strconv.Itoa(port) {
					t.Errorf("answerer local address %v, want port %d", c.LocalAddr(), port)
				}
			}
			for _, c := range []*Conn{ocA, ocB} {
				if _, p, _ := net.SplitHostPort(c.RemoteAddr().String()); p != strconv.Itoa(port) {
					t.Errorf("offerer sees the answerer at %v, want port %d", c.RemoteAddr(), port)
				}
			}
			// Both conns carry their own bytes.
			for i, pair := range [][2]*Conn{{ocA, acA}, {ocB, acB}} {
				want := strings.Repeat(strconv.Itoa(i), 1000)
				if _, err := pair[0].Write([]byte(want)); err != nil {
					t.Fatal(err)
				}
				if got := readFull(t, pair[1], len(want)); string(got) != want {
					t.Fatalf("pair %d got other bytes", i)
				}
			}
		})
	}
}

// PublicIPs replace the host addresses in what we advertise (NAT 1:1); with the UDP mux the
// advertised port is the configured one.
func TestPublicIPsAdvertised(t *testing.T) {
	ctx := guard(t, 20*time.Second)
	port := freeUDPPort(t)
	b := newBridge(t, func(c *Config) {
		c.PublicIPs = []string{"203.0.113.7"}
		c.UDPPort = port
	})
	po, err := b.Offer(ctx, testMeta)
	if err != nil {
		t.Fatal(err)
	}
	defer po.Close()
	var cands []string
	for line := range strings.SplitSeq(po.SDP(), "\n") {
		if strings.HasPrefix(line, "a=candidate:") {
			cands = append(cands, strings.TrimSpace(line))
		}
	}
	if len(cands) == 0 {
		t.Fatal("no candidates in the offer")
	}
	for _, c := range cands {
		if !strings.Contains(c, " 203.0.113.7 "+strconv.Itoa(port)+" ") {
			t.Errorf("candidate %q does not advertise 203.0.113.7:%d", c, port)
		}
	}
}
