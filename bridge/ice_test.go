package bridge

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// cutPacketConn is a remote's UDP socket whose network can be cut: while cut, nothing it sends
// leaves and nothing sent to it arrives, and it says nothing about it (no close, no goodbye), as
// when Wi-Fi drops or a tab is killed.
type cutPacketConn struct {
	net.PacketConn
	cut atomic.Bool
}

func (c *cutPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.cut.Load() {
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, addr)
}

func (c *cutPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil || !c.cut.Load() {
			return n, addr, err
		}
	}
}

// fastICE makes the bridge notice silence within a second instead of pion's 5 s.
var fastICE = &iceTimeouts{disconnected: 500 * time.Millisecond, failed: time.Minute, keepalive: 100 * time.Millisecond}

// cuttableRemote is a bare pion peer (a browser stand-in) connected to b through a socket whose
// network can be cut; it returns the remote's channel, the bridge's conn and the socket.
func cuttableRemote(t *testing.T, b *testBridge) (*webrtc.DataChannel, chan []byte, *Conn, *cutPacketConn) {
	t.Helper()
	ctx := t.Context()
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock := &cutPacketConn{PacketConn: udp}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// Keepalives often enough for the bridge's short disconnected timeout; the remote itself gives
	// up late, so it is still there when the network returns.
	se.SetICETimeouts(time.Minute, time.Minute, 100*time.Millisecond)
	mux := webrtc.NewICEUDPMux(nil, sock)
	t.Cleanup(func() { _ = mux.Close() })
	se.SetICEUDPMux(mux)
	remote, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = remote.Close() })
	opened := make(chan struct{})
	received := make(chan []byte, 16)
	dc, err := remote.CreateDataChannel("webtorrent", nil)
	if err != nil {
		t.Fatal(err)
	}
	dc.OnOpen(func() { close(opened) })
	dc.OnMessage(func(m webrtc.DataChannelMessage) { received <- m.Data })

	offer, err := remote.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(remote)
	if err := remote.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	answer, err := b.Answer(ctx, testMeta, remote.LocalDescription().SDP)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	c := accept(t, ctx, b)
	t.Cleanup(func() { _ = c.Close() })
	select {
	case <-opened:
	case <-ctx.Done():
		t.Fatal("remote channel did not open")
	}
	if err := dc.Send([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if got := readFull(t, c, 5); string(got) != "hello" {
		t.Fatalf("got %q", got)
	}
	return dc, received, c, sock
}

// A brief loss of the network makes ICE disconnected but not failed: the peer stays, and what
// was sent meanwhile arrives once the network is back.
func TestBriefInterruptionKeepsPeer(t *testing.T) {
	ctx := guard(t, 30*time.Second)
	ans := newBridge(t, func(c *Config) {
		c.iceTimeouts = fastICE
		c.DisconnectedGrace = time.Minute // longer than the test: only a closing on disconnected would end the peer
	})
	dc, received, c, sock := cuttableRemote(t, ans)

	sock.cut.Store(true)
	eventually(t, ctx, "the bridge to notice the silence", func() bool {
		s := ans.Stats()
		return s.Disconnected == 1 || s.PeerConnections == 0 // the latter: closed on disconnected
	})
	if err := dc.Send([]byte("during")); err != nil { // queued in SCTP, retransmitted later
		t.Fatal(err)
	}
	sock.cut.Store(false)
	eventually(t, ctx, "ICE to reconnect", func() bool { return ans.Stats().Disconnected == 0 })

	if s := ans.Stats(); s.PeerConnections != 1 || s.OpenConns != 1 {
		t.Fatalf("after the interruption: %+v, want the peer kept", s)
	}
	if got := readFull(t, c, 6); string(got) != "during" {
		t.Fatalf("got %q", got)
	}
	if _, err := c.Write([]byte("after")); err != nil {
		t.Fatalf("write after the interruption: %v", err)
	}
	select {
	case got := <-received:
		if string(got) != "after" {
			t.Fatalf("remote got %q", got)
		}
	case <-ctx.Done():
		t.Fatal("remote got nothing after the interruption")
	}
}

// A remote that stays silent is dropped, by whichever comes first: DisconnectedGrace, or pion
// declaring ICE failed. The conn's Read ends and the PeerConnection is closed.
func TestSilentRemoteIsDropped(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ice    iceTimeouts
		grace  time.Duration
		reason string
	}{
		{"grace ends first", iceTimeouts{500 * time.Millisecond, time.Minute, 100 * time.Millisecond}, time.Second, "DisconnectedGrace"},
		{"ice fails first", iceTimeouts{500 * time.Millisecond, time.Second, 100 * time.Millisecond}, time.Minute, "ICE failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := guard(t, 30*time.Second)
			ans := newBridge(t, func(c *Config) {
				c.iceTimeouts = &tc.ice
				c.DisconnectedGrace = tc.grace
			})
			_, _, c, sock := cuttableRemote(t, ans)

			sock.cut.Store(true)
			start := time.Now()
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
				t.Fatalf("read from a silent remote: %v", err)
			}
			eventually(t, ctx, "PeerConnection closed", func() bool { return ans.Stats().PeerConnections == 0 })
			if d := ans.Stats().Disconnected; d != 0 {
				t.Errorf("Disconnected = %d after the peer closed", d)
			}
			t.Logf("silent remote dropped by %s after %v", tc.reason, time.Since(start).Round(100*time.Millisecond))
		})
	}
}
