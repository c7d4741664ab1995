package bridge

import (
	"bytes"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestConnBothWays(t *testing.T) {
	ctx := guard(t, 20*time.Second)
	const msgSize = 16 << 10
	off := newBridge(t, func(c *Config) { c.MaxMessageSize = msgSize })
	ans := newBridge(t, func(c *Config) { c.MaxMessageSize = msgSize })
	oc, ac := connect(t, ctx, off, ans)

	// A 68-byte message read 20 bytes first, as the torrent client reads a handshake.
	hs := make([]byte, 68)
	_, _ = rand.Read(hs)
	if _, err := oc.Write(hs); err != nil {
		t.Fatal(err)
	}
	first := readFull(t, ac, 20)
	rest := readFull(t, ac, 48)
	if !bytes.Equal(append(first, rest...), hs) {
		t.Fatal("68-byte message garbled")
	}

	if ac.rbuf != nil {
		t.Error("read buffer held after the message was drained")
	}
	// Byte by byte.
	if _, err := oc.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for range 10 {
		got = append(got, readFull(t, ac, 1)...)
	}
	if string(got) != "0123456789" || ac.rbuf != nil {
		t.Fatalf("1-byte reads got %q", got)
	}

	// Larger than MaxMessageSize both ways: split on write, intact on read.
	for _, dir := range []struct {
		name string
		w, r *Conn
	}{{"offerer→answerer", oc, ac}, {"answerer→offerer", ac, oc}} {
		big := make([]byte, 5*msgSize+123)
		_, _ = rand.Read(big)
		werr := make(chan error, 1)
		go func() { _, err := dir.w.Write(big); werr <- err }()
		if got := readFull(t, dir.r, len(big)); !bytes.Equal(got, big) {
			t.Fatalf("%s: payload differs", dir.name)
		}
		if err := <-werr; err != nil {
			t.Fatalf("%s: write: %v", dir.name, err)
		}
	}
	if oc.chunk > msgSize || ac.chunk > msgSize {
		t.Errorf("chunk sizes %d, %d exceed the remote max %d", oc.chunk, ac.chunk, msgSize)
	}

	for _, c := range []*Conn{oc, ac} {
		for _, a := range []net.Addr{c.RemoteAddr(), c.LocalAddr()} {
			if a.Network() != "webrtc" {
				t.Errorf("addr network %q", a.Network())
			}
			host, port, err := net.SplitHostPort(a.String())
			if err != nil || net.ParseIP(host) == nil {
				t.Errorf("addr %q is not ip:port", a)
			}
			if p, _ := strconv.Atoi(port); p == 0 {
				t.Errorf("addr %q has port 0", a)
			}
		}
		if c.Meta() != testMeta {
			t.Errorf("Meta = %v", c.Meta())
		}
	}
	if !off.Connected(testMeta) || !ans.Connected(testMeta) {
		t.Error("Connected = false with open conns")
	}
	if off.Connected(PeerMeta{}) {
		t.Error("Connected true for an unknown peer")
	}
	wantBytes := uint64(68 + 10 + 5*msgSize + 123)
	if s := off.Stats(); s.OpenConns != 1 || s.PeerConnections != 1 || s.BytesWritten != wantBytes || s.BytesRead != wantBytes-78 {
		t.Errorf("offerer stats %+v", s)
	}
	if s := ac.Stats(); s.BytesRead != wantBytes || s.BytesWritten != wantBytes-78 {
		t.Errorf("answerer conn stats %+v", s)
	}
}

func TestDeadlines(t *testing.T) {
	ctx := guard(t, 20*time.Second)
	off, ans := newBridge(t, nil), newBridge(t, nil)
	oc, ac := connect(t, ctx, off, ans)

	if err := ac.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatalf("SetReadDeadline: %v", err)
	}
	start := time.Now()
	_, err := ac.Read(make([]byte, 10))
	if !isTimeout(err) {
		t.Fatalf("read past deadline: %v, want a timeout", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("read past deadline took %v", d)
	}

	_ = ac.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := ac.Read(make([]byte, 10)); !isTimeout(err) {
		t.Fatalf("read with a near deadline: %v, want a timeout", err)
	}

	// Cleared: reads work again.
	_ = ac.SetDeadline(time.Time{})
	if _, err := oc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if got := readFull(t, ac, 4); string(got) != "ping" {
		t.Fatalf("got %q", got)
	}

	_ = oc.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := oc.Write([]byte("x")); !isTimeout(err) {
		t.Fatalf("write past deadline: %v, want a timeout", err)
	}
	_ = oc.SetWriteDeadline(time.Time{})
	if _, err := oc.Write([]byte("y")); err != nil {
		t.Fatalf("write after clearing the deadline: %v", err)
	}

	// Never an error, not even after Close.
	_ = oc.Close()
	for _, err := range []error{oc.SetDeadline(time.Now()), oc.SetReadDeadline(time.Now()), oc.SetWriteDeadline(time.Now())} {
		if err != nil {
			t.Errorf("deadline after Close: %v", err)
		}
	}
}

func TestCloseEndsRemote(t *testing.T) {
	ctx := guard(t, 20*time.Second)
	off, ans := newBridge(t, nil), newBridge(t, nil)
	oc, ac := connect(t, ctx, off, ans)

	readErr := make(chan error, 1)
	go func() {
		_, err := ac.Read(make([]byte, 100))
		readErr <- err
	}()
	if err := oc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := oc.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("remote Read returned no error")
		}
		t.Logf("remote read ended with %v", err)
	case <-ctx.Done():
		t.Fatal("remote Read did not end")
	}
	if _, err := oc.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if _, err := oc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	_ = ac.Close()
	eventually(t, ctx, "both PeerConnections closed", func() bool {
		return off.Stats().PeerConnections == 0 && ans.Stats().PeerConnections == 0
	})
	if off.Connected(testMeta) || ans.Connected(testMeta) {
		t.Error("Connected after Close")
	}
}

// The remote closing its PeerConnection without closing the channel first (a tab going away)
// must end our side too.
func TestRemotePeerConnectionGone(t *testing.T) {
	ctx := guard(t, 20*time.Second)
	off, ans := newBridge(t, nil), newBridge(t, nil)
	_, ac := connect(t, ctx, off, ans)
	if err := off.Close(); err != nil {
		t.Fatal(err)
	}
	_ = ac.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := ac.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read after the remote went away: %v", err)
	}
	eventually(t, ctx, "answerer PeerConnection closed", func() bool { return ans.Stats().PeerConnections == 0 })
}

// A local Close ends a blocked Read and a Write blocked on a remote that does not read, at once
// (not after WriteTimeout).
func TestCloseUnblocks(t *testing.T) {
	ctx := guard(t, 20*time.Second)
	small := func(c *Config) { c.ReceiveBuffer = 64 << 10 }
	off, ans := newBridge(t, small), newBridge(t, small)
	oc, _ := connect(t, ctx, off, ans) // the answerer never reads nor writes

	readErr := make(chan error, 1)
	go func() { _, err := oc.Read(make([]byte, 1)); readErr <- err }()
	writeErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 16<<10)
		for {
			if _, err := oc.Write(buf); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	// Wait until the writer is stuck: the remote's window is full.
	eventually(t, ctx, "writer blocked", func() bool {
		before := oc.Stats().BytesWritten
		time.Sleep(50 * time.Millisecond)
		return before > 0 && oc.Stats().BytesWritten == before
	})
	start := time.Now()
	_ = oc.Close()
	for _, ch := range []chan error{readErr, writeErr} {
		select {
		case err := <-ch:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("blocked call ended with %v, want net.ErrClosed", err)
			}
		case <-ctx.Done():
			t.Fatal("Close did not unblock")
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("unblocking took %v", d)
	}
}

func TestConnectTimeout(t *testing.T) {
	ctx := guard(t, 20*time.Second)
	short := func(c *Config) { c.ConnectTimeout = 300 * time.Millisecond }
	off, ans := newBridge(t, short), newBridge(t, short)

	// An offer nobody answers.
	if _, err := off.Offer(ctx, testMeta); err != nil {
		t.Fatal(err)
	}
	// An answer the offerer never applies.
	other := newBridge(t, nil)
	po, err := other.Offer(ctx, testMeta)
	if err != nil {
		t.Fatal(err)
	}
	defer po.Close()
	if _, err := ans.Answer(ctx, testMeta, po.SDP()); err != nil {
		t.Fatal(err)
	}
	if off.Stats().PeerConnections != 1 || ans.Stats().PeerConnections != 1 {
		t.Fatalf("stats before timeout: %+v %+v", off.Stats(), ans.Stats())
	}
	eventually(t, ctx, "PeerConnections closed by ConnectTimeout", func() bool {
		return off.Stats().PeerConnections == 0 && ans.Stats().PeerConnections == 0
	})
}

func TestParkedConnExpires(t *testing.T) {
	ctx := guard(t, 20*time.Second)
	off := newBridge(t, func(c *Config) { c.ConnectTimeout = 500 * time.Millisecond })
	ans := newBridge(t, nil)
	signal(t, ctx, off, ans, testMeta)
	ac := accept(t, ctx, ans)
	defer ac.Close()
	var addr string
	select {
	case addr = <-off.dialable:
	case <-ctx.Done():
		t.Fatal("no OnDialable")
	}
	if !strings.HasPrefix(addr, "webrtc-") || strings.Contains(addr, ":") {
		t.Errorf("parked address %q is not an undialable webrtc-… name", addr)
	}
	eventually(t, ctx, "unclaimed parked conn closed", func() bool { return off.Stats().OpenConns == 0 })
	if _, err := off.Dial(ctx, addr); !errors.Is(err, ErrUnknownAddr) {
		t.Fatalf("Dial of an expired address: %v", err)
	}
	_ = ac.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := ac.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("answerer read after expiry: %v", err)
	}
}

func TestDialOnce(t *testing.T) {
	ctx := guard(t, 20*time.Second)
	off, ans := newBridge(t, nil), newBridge(t, nil)
	signal(t, ctx, off, ans, testMeta)
	ac := accept(t, ctx, ans)
	defer ac.Close()
	addr := <-off.dialable
	c, err := off.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := off.Dial(ctx, addr); !errors.Is(err, ErrUnknownAddr) {
		t.Errorf("second Dial: %v", err)
	}
	for _, a := range []string{"127.0.0.1:6881", "[::1]:6881", ""} {
		if _, err := off.Dial(ctx, a); !errors.Is(err, ErrUnknownAddr) {
			t.Errorf("Dial(%q): %v", a, err)
		}
	}
	if off.DialerNetwork() != "webrtc" || off.Addr().Network() != "webrtc" {
		t.Error("network is not webrtc")
	}
	if _, _, err := net.SplitHostPort(off.Addr().String()); err == nil {
		t.Errorf("listener address %q has a port the torrent client would announce", off.Addr())
	}
}

func TestWriteTimeoutClosesSlowReader(t *testing.T) {
	ctx := guard(t, 20*time.Second)
	small := func(c *Config) {
		c.WriteTimeout = 300 * time.Millisecond
		c.ReceiveBuffer = 64 << 10
	}
	off, ans := newBridge(t, small), newBridge(t, small)
	oc, _ := connect(t, ctx, off, ans) // the answerer never reads
	buf := make([]byte, 16<<10)
	var err error
	for err == nil && ctx.Err() == nil {
		_, err = oc.Write(buf)
	}
	if !errors.Is(err, ErrWriteTimeout) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write to a reader that never reads: %v", err)
	}
	eventually(t, ctx, "slow conn closed", func() bool { return off.Stats().PeerConnections == 0 })
}

func TestLimitsAndClose(t *testing.T) {
	ctx := guard(t, 20*time.Second)
	b := newBridge(t, func(c *Config) { c.MaxPeers = 1 })
	po, err := b.Offer(ctx, testMeta)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Offer(ctx, testMeta); !errors.Is(err, ErrTooManyPeers) {
		t.Fatalf("second Offer over MaxPeers: %v", err)
	}
	if _, err := b.Answer(ctx, testMeta, po.SDP()); !errors.Is(err, ErrTooManyPeers) {
		t.Fatalf("Answer over MaxPeers: %v", err)
	}
	_ = po.Close()
	_ = po.Close()
	if n := b.Stats().PeerConnections; n != 0 {
		t.Fatalf("%d PeerConnections after abandoning the offer", n)
	}
	if _, err := b.Answer(ctx, testMeta, "v=0 not an offer"); !errors.Is(err, ErrInvalidSDP) {
		t.Fatalf("Answer of garbage: %v", err)
	}
	if n := b.Stats().PeerConnections; n != 0 {
		t.Fatalf("%d PeerConnections after a failed Answer", n)
	}

	noDial, err := New(loopbackConfig(), testLog)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noDial.Offer(ctx, testMeta); !errors.Is(err, ErrNoOnDialable) {
		t.Errorf("Offer without OnDialable: %v", err)
	}
	_ = noDial.Close()

	accepted := make(chan error, 1)
	go func() { _, err := b.Accept(); accepted <- err }()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if _, err := b.Offer(ctx, testMeta); !errors.Is(err, ErrClosed) {
		t.Fatalf("Offer after Close: %v", err)
	}
}

// Closing the Bridge closes its live conns; their remotes see the end.
func TestBridgeCloseClosesConns(t *testing.T) {
	ctx := guard(t, 20*time.Second)
	off, ans := newBridge(t, nil), newBridge(t, nil)
	oc, ac := connect(t, ctx, off, ans)
	if err := ans.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write on a conn of a closed bridge: %v", err)
	}
	_ = oc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := oc.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("remote read: %v", err)
	}
	if s := ans.Stats(); s.PeerConnections != 0 || s.OpenConns != 0 {
		t.Errorf("stats after Close: %+v", s)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want []string // fields named in the error; none: valid
	}{
		{"default", func(*Config) {}, nil},
		{"mux", func(c *Config) { c.UDPPort, c.UDPAddr = 50000, "127.0.0.1" }, nil},
		{"public ip", func(c *Config) { c.PublicIPs = []string{"203.0.113.7"} }, nil},
		{"no per-swarm limit", func(c *Config) { c.MaxPeersPerSwarm = 0 }, nil},
		{"port range", func(c *Config) { c.UDPPort = 70000 }, []string{"UDPPort"}},
		{"addr without port", func(c *Config) { c.UDPAddr = "127.0.0.1" }, []string{"UDPAddr needs UDPPort"}},
		{"addr not ip", func(c *Config) { c.UDPPort, c.UDPAddr = 1, "localhost" }, []string{"UDPAddr"}},
		{"public not ip", func(c *Config) { c.PublicIPs = []string{"example.com"} }, []string{"PublicIPs"}},
		{"tiny messages", func(c *Config) { c.MaxMessageSize = 100 }, []string{"MaxMessageSize"}},
		{"buffer below message", func(c *Config) { c.MaxMessageSize, c.ReceiveBuffer = 64<<10, 32<<10 }, []string{"ReceiveBuffer"}},
		{"zero timeout", func(c *Config) { c.ConnectTimeout = 0 }, []string{"ConnectTimeout"}},
		{"zero grace", func(c *Config) { c.DisconnectedGrace = 0 }, []string{"DisconnectedGrace"}},
		{"negative write timeout", func(c *Config) { c.WriteTimeout = -1 }, []string{"WriteTimeout"}},
		{"zero peers", func(c *Config) { c.MaxPeers = 0 }, []string{"MaxPeers"}},
		{"negative per-swarm", func(c *Config) { c.MaxPeersPerSwarm = -1 }, []string{"MaxPeersPerSwarm"}},
		// Every problem at once, not only the first.
		{"zero value", func(c *Config) { *c = Config{} }, []string{"MaxMessageSize", "ConnectTimeout", "WriteTimeout", "DisconnectedGrace", "MaxPeers"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mod(&cfg)
			err := cfg.Validate()
			if (err == nil) != (tc.want == nil) {
				t.Fatalf("Validate = %v, want problems with %q", err, tc.want)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("%v does not wrap ErrInvalidConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, does not name %q", err, w)
				}
			}
			if _, nerr := New(cfg, nil); !errors.Is(nerr, ErrInvalidConfig) {
				t.Errorf("New accepted a config Validate refuses: %v", nerr)
			}
		})
	}
}

// Many peers at once through one answering Bridge: every conn opens, carries its own bytes, and
// everything is torn down again.
func TestManyPeersAtOnce(t *testing.T) {
	ctx := guard(t, 30*time.Second)
	const n = 8
	ans := newBridge(t, nil)
	off := newBridge(t, nil)
	type pair struct{ oc, ac *Conn }
	errs := make(chan error, n)
	for i := range n {
		go func() {
			meta := testMeta
			meta.PeerID[19] = byte(i)
			po, err := off.Offer(ctx, meta)
			if err == nil {
				var answer string
				if answer, err = ans.Answer(ctx, meta, po.SDP()); err == nil {
					err = po.Accept(answer)
				}
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	byID := map[byte]*pair{}
	for range n {
		ac := accept(t, ctx, ans)
		byID[ac.Meta().PeerID[19]] = &pair{ac: ac}
	}
	for range n {
		oc := dial(t, ctx, off)
		byID[oc.Meta().PeerID[19]].oc = oc
	}
	for id, p := range byID {
		msg := bytes.Repeat([]byte{id}, 40<<10)
		go func() { _, _ = p.oc.Write(msg) }()
		if got := readFull(t, p.ac, len(msg)); !bytes.Equal(got, msg) {
			t.Fatalf("peer %d got another peer's bytes", id)
		}
	}
	if s := ans.Stats(); s.OpenConns != n || s.PeerConnections != n {
		t.Fatalf("answerer stats %+v", s)
	}
	for _, p := range byID {
		_ = p.oc.Close()
		_ = p.ac.Close()
	}
	eventually(t, ctx, "all PeerConnections closed", func() bool {
		return ans.Stats().PeerConnections == 0 && off.Stats().PeerConnections == 0
	})
}

func TestPerSwarmLimit(t *testing.T) {
	ctx := guard(t, 20*time.Second)
	b := newBridge(t, func(c *Config) { c.MaxPeers = 3; c.MaxPeersPerSwarm = 1 })
	other := PeerMeta{InfoHash: [20]byte{0xee}, PeerID: testMeta.PeerID}
	po, err := b.Offer(ctx, testMeta)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Room(testMeta.InfoHash); !errors.Is(err, ErrTooManyPeers) || !strings.Contains(err.Error(), "this swarm") {
		t.Fatalf("Room of a full swarm: %v", err)
	}
	if _, err := b.Offer(ctx, testMeta); !errors.Is(err, ErrTooManyPeers) {
		t.Fatalf("second Offer in one swarm: %v", err)
	}
	// Another swarm still has room.
	if err := b.Room(other.InfoHash); err != nil {
		t.Fatalf("Room of another swarm: %v", err)
	}
	po2, err := b.Offer(ctx, other)
	if err != nil {
		t.Fatalf("Offer in another swarm: %v", err)
	}
	_ = po.Close()
	_ = po2.Close()
	if err := b.Room(testMeta.InfoHash); err != nil {
		t.Fatalf("Room after the swarm's peer closed: %v", err)
	}
}

// HasPeer counts a peer from the offer (or answer) on, not only once its channel is open, so that
// nobody offers to a peer whose connection is still being set up; and it forgets the peer when
// the PeerConnection closes.
func TestHasPeer(t *testing.T) {
	ctx := guard(t, 30*time.Second)
	off, ans := newBridge(t, nil), newBridge(t, nil)
	other := PeerMeta{InfoHash: testMeta.InfoHash, PeerID: [20]byte{9}}

	po, err := off.Offer(ctx, testMeta)
	if err != nil {
		t.Fatal(err)
	}
	if !off.HasPeer(testMeta) || off.Connected(testMeta) || off.HasPeer(other) {
		t.Fatalf("pending offer: HasPeer %v, Connected %v, other %v", off.HasPeer(testMeta), off.Connected(testMeta), off.HasPeer(other))
	}
	answer, err := ans.Answer(ctx, testMeta, po.SDP())
	if err != nil {
		t.Fatal(err)
	}
	if !ans.HasPeer(testMeta) {
		t.Fatal("answered, channel not open yet: HasPeer false")
	}
	if err := po.Accept(answer); err != nil {
		t.Fatal(err)
	}
	ac := accept(t, ctx, ans)
	oc := dial(t, ctx, off)
	if !off.HasPeer(testMeta) || !ans.HasPeer(testMeta) || !off.Connected(testMeta) {
		t.Fatal("open conn: HasPeer or Connected false")
	}
	_ = oc.Close()
	_ = ac.Close()
	eventually(t, ctx, "HasPeer false once closed", func() bool { return !off.HasPeer(testMeta) && !ans.HasPeer(testMeta) })

	// An offer abandoned without an answer.
	po, err = off.Offer(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if !off.HasPeer(other) {
		t.Fatal("second pending offer: HasPeer false")
	}
	_ = po.Close()
	if off.HasPeer(other) {
		t.Fatal("abandoned offer: HasPeer still true")
	}
}
