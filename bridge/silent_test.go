package bridge

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// mutePacketConn stops sending once muted, like a tab that was killed: no close, no goodbye.
type mutePacketConn struct {
	net.PacketConn
	muted atomic.Bool
}

func (m *mutePacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if m.muted.Load() {
		return len(p), nil
	}
	return m.PacketConn.WriteTo(p, addr)
}

// A remote that falls silent is dropped once ICE notices (pion: disconnected after ≈5 s): the
// conn's Read ends and the PeerConnection is closed.
func TestSilentRemoteIsDropped(t *testing.T) {
	ctx := guard(t, 30*time.Second)
	ans := newBridge(t, nil)

	// The remote is a bare pion peer (a browser stand-in) whose socket we can mute.
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mute := &mutePacketConn{PacketConn: udp}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	mux := webrtc.NewICEUDPMux(nil, mute)
	defer mux.Close()
	se.SetICEUDPMux(mux)
	remote, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	opened := make(chan struct{})
	dc, err := remote.CreateDataChannel("webtorrent", nil)
	if err != nil {
		t.Fatal(err)
	}
	dc.OnOpen(func() { close(opened) })

	offer, err := remote.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(remote)
	if err := remote.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	answer, err := ans.Answer(ctx, testMeta, remote.LocalDescription().SDP)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	c := accept(t, ctx, ans)
	defer c.Close()
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

	mute.muted.Store(true)
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read from a silent remote: %v", err)
	}
	eventually(t, ctx, "PeerConnection closed", func() bool { return ans.Stats().PeerConnections == 0 })
	t.Logf("silent remote dropped after %v", time.Since(start).Round(100*time.Millisecond))
}
