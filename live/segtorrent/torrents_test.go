package segtorrent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmgate/swarmgate/internal/peertest"
	"github.com/swarmgate/swarmgate/live"
)

// newClient is a real anacrolix client on loopback TCP, as a gateway's but without DHT, uTP or
// PEX, closed when the test ends.
func newClient(t *testing.T) *torrent.Client {
	t.Helper()
	cfg := peertest.LoopbackClientConfig(t.TempDir()) // segments never touch the folder; anacrolix wants one
	cfg.AlwaysWantConns = true
	cfg.Slogger = slog.New(slog.DiscardHandler) // the refusals tests provoke are logged as warnings
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// newTorrents is Torrents on a new client, with cfg's defaults changed by tune.
func newTorrents(t *testing.T, tune func(*Config)) (*Torrents, *torrent.Client) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Client = newClient(t)
	if tune != nil {
		tune(&cfg)
	}
	st, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st, cfg.Client
}

func addr(cl *torrent.Client) string { return fmt.Sprintf("127.0.0.1:%d", cl.LocalPort()) }

// stream makes a stream's segments of random bytes, with their entries as a window holds them.
type stream struct {
	t  *testing.T
	id live.StreamID
}

func newStream(t *testing.T) stream {
	priv, err := live.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return stream{t, live.StreamIDOfKey(priv)}
}

func (s stream) segment(kind live.Kind, seq uint64, size int) live.Segment {
	s.t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	var dur time.Duration
	if kind == live.KindMedia {
		dur = time.Second
	}
	e, err := live.NewEntry(s.id, kind, seq, time.Now(), dur, data)
	if err != nil {
		s.t.Fatal(err)
	}
	return live.Segment{SignedEntry: live.SignedEntry{Entry: e}, Data: data}
}

// fetchContext bounds a fetch expected to succeed, so that a broken one fails the test instead of
// hanging it.
func fetchContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func seed(t *testing.T, st *Torrents, seg live.Segment) {
	t.Helper()
	if err := st.Seed(seg.Stream, seg); err != nil {
		t.Fatalf("seed %s %d: %v", seg.Kind, seg.Seq, err)
	}
}

func has(cl *torrent.Client, ih metainfo.Hash) bool {
	_, ok := cl.Torrent(ih)
	return ok
}

// TestFetchFromSeeder: a segment seeded from memory on one client is fetched by its infohash on
// another, piece by piece (three pieces here), and once seeded there too (as a relay does with
// what it fetched), a third client fetches it from the second alone.
func TestFetchFromSeeder(t *testing.T) {
	s := newStream(t)
	seg := s.segment(live.KindMedia, 7, 2*live.SegmentPieceLength+1000)
	origin, originClient := newTorrents(t, nil)
	seed(t, origin, seg)

	relay, relayClient := newTorrents(t, nil)
	got, err := relay.FetchSegment(fetchContext(t), seg.Entry, func() []string { return []string{addr(originClient)} })
	if err != nil || !bytes.Equal(got, seg.Data) {
		t.Fatalf("fetch from the origin: %d bytes, %v; want the %d seeded", len(got), err, len(seg.Data))
	}
	seed(t, relay, live.Segment{SignedEntry: seg.SignedEntry, Data: got})

	second, _ := newTorrents(t, nil)
	got, err = second.FetchSegment(fetchContext(t), seg.Entry, func() []string { return []string{addr(relayClient)} })
	if err != nil || !bytes.Equal(got, seg.Data) {
		t.Fatalf("fetch from the relay: %d bytes, %v; want the %d it fetched", len(got), err, len(seg.Data))
	}
}

// TestFetchOffersPeersAgain: a fetch asks for peers again while it waits, so a peer learnt later
// (a source that came back, a relay that got the segment since) gives the segment.
func TestFetchOffersPeersAgain(t *testing.T) {
	s := newStream(t)
	seg := s.segment(live.KindInit, 0, 1000)
	origin, originClient := newTorrents(t, nil)
	seed(t, origin, seg)

	relay, _ := newTorrents(t, func(c *Config) { c.PeerRetry = 10 * time.Millisecond })
	var calls atomic.Int32
	peers := func() []string {
		if calls.Add(1) == 1 {
			return nil // nobody has it yet
		}
		return []string{addr(originClient)}
	}
	got, err := relay.FetchSegment(fetchContext(t), seg.Entry, peers)
	if err != nil || !bytes.Equal(got, seg.Data) {
		t.Fatalf("fetch: %q, %v; want %q", got, err, seg.Data)
	}
	if n := calls.Load(); n < 2 {
		t.Errorf("peers asked %d times", n)
	}
}

// TestFetchGivesUp: without peers a fetch ends with its context and says why; the torrent it
// added stays until the relay drops the segment.
func TestFetchGivesUp(t *testing.T) {
	s := newStream(t)
	seg := s.segment(live.KindMedia, 1, 1000)
	relay, cl := newTorrents(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := relay.FetchSegment(ctx, seg.Entry, func() []string { return nil })
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "no peer gave its torrent's info") {
		t.Errorf("fetch without peers: %v", err)
	}
	if !has(cl, seg.InfoHash) {
		t.Fatal("the fetch's torrent is gone before the relay dropped it")
	}
	relay.DropSegment(seg.Entry)
	if has(cl, seg.InfoHash) {
		t.Error("a dropped fetch's torrent stays in the client")
	}
}

// TestFetchRefusesInfoNotMatchingEntry: a torrent whose info (good for the infohash) describes
// other bytes than the entry (here: another size) is refused before its bytes are allocated, and
// the fetch gives none. (anacrolix then never reports the info, so the fetch ends with its
// context, as a relay's fetch timeout ends it.)
func TestFetchRefusesInfoNotMatchingEntry(t *testing.T) {
	s := newStream(t)
	seg := s.segment(live.KindMedia, 3, 5000)
	origin, originClient := newTorrents(t, nil)
	seed(t, origin, seg)

	relay, _ := newTorrents(t, nil)
	lying := seg.Entry
	lying.Size++
	ctx, cancel := context.WithCancel(t.Context())
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := relay.FetchSegment(ctx, lying, func() []string { return []string{addr(originClient)} })
		done <- result{b, err}
	}()
	refused := func() (*segmentStorage, error) {
		relay.mu.Lock()
		s := relay.stored[lying.InfoHash]
		relay.mu.Unlock()
		if s == nil {
			return nil, nil
		}
		return s, s.openErr()
	}
	var refusal error
	for range 500 { // 10 s at most
		if _, refusal = refused(); refusal != nil {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("fetch of an entry its torrent does not describe: %d bytes, %v", len(r.b), r.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	r := <-done
	if refusal == nil || !strings.Contains(refusal.Error(), "its torrent describes") {
		t.Errorf("the storage's refusal: %v", refusal)
	}
	if st, _ := refused(); st != nil && st.bytes() != nil {
		t.Errorf("%d bytes allocated for a refused info", len(st.bytes()))
	}
	if r.err == nil || r.b != nil {
		t.Errorf("fetch: %d bytes, %v; want none and an error", len(r.b), r.err)
	}
}

// TestSeedRefusesOtherInfoHash: bytes that make another torrent than the entry names are not
// seeded; a segment without its bytes is left alone.
func TestSeedRefusesOtherInfoHash(t *testing.T) {
	s := newStream(t)
	seg := s.segment(live.KindMedia, 2, 1000)
	other := s.segment(live.KindMedia, 2, 1000)
	st, cl := newTorrents(t, nil)
	mixed := live.Segment{SignedEntry: seg.SignedEntry, Data: other.Data}
	if err := st.Seed(s.id, mixed); err == nil || !strings.Contains(err.Error(), "its entry says") {
		t.Errorf("seed of bytes not matching the entry: %v", err)
	}
	if has(cl, seg.InfoHash) || has(cl, other.InfoHash) {
		t.Error("a refused segment is in the client")
	}
	if err := st.Seed(s.id, live.Segment{SignedEntry: seg.SignedEntry}); err != nil || has(cl, seg.InfoHash) {
		t.Errorf("seed without bytes: %v, in the client: %v", err, has(cl, seg.InfoHash))
	}
}

// TestSeedKeepsNewest: past Keep media segments the oldest torrents leave the client, except the
// init heading the oldest kept one; another stream's are left alone; DropSegment leaves a seeded
// segment seeded.
func TestSeedKeepsNewest(t *testing.T) {
	a, b := newStream(t), newStream(t)
	st, cl := newTorrents(t, func(c *Config) { c.Keep = 2 })
	var segs []live.Segment
	add := func(seg live.Segment) {
		seed(t, st, seg)
		segs = append(segs, seg)
	}
	bInit := b.segment(live.KindInit, 0, 100)
	seed(t, st, bInit)
	add(a.segment(live.KindInit, 0, 100))
	for seq := uint64(0); seq < 5; seq++ {
		add(a.segment(live.KindMedia, seq, 1000))
	}
	var in []string
	for _, seg := range segs {
		if has(cl, seg.InfoHash) {
			in = append(in, live.SegmentName(seg.Kind, seg.Seq))
		}
	}
	if got, want := strings.Join(in, " "), "init-0.mp4 3.m4s 4.m4s"; got != want {
		t.Errorf("seeded: %s, want %s", got, want)
	}
	if !has(cl, bInit.InfoHash) {
		t.Error("another stream's init was dropped")
	}
	st.DropSegment(segs[len(segs)-1].Entry)
	if !has(cl, segs[len(segs)-1].InfoHash) {
		t.Error("DropSegment dropped a seeded segment")
	}
}

// TestKeptSegments: the newest media segments stay seeded, with the init heading the oldest of
// them.
func TestKeptSegments(t *testing.T) {
	var list []live.Entry
	add := func(kind live.Kind, seq uint64) {
		e := live.Entry{Kind: kind, Seq: seq}
		e.InfoHash[0], e.InfoHash[1] = byte(kind), byte(seq)
		list = append(list, e)
	}
	add(live.KindInit, 0)
	for seq := uint64(0); seq < 6; seq++ {
		if seq == 4 {
			add(live.KindInit, 4)
		}
		add(live.KindMedia, seq)
	}
	names := func(keep map[metainfo.Hash]struct{}) string {
		var out []string
		for _, e := range list {
			if _, ok := keep[e.InfoHash]; ok {
				out = append(out, live.SegmentName(e.Kind, e.Seq))
			}
		}
		return strings.Join(out, " ")
	}
	for _, c := range []struct {
		keep int
		want string
	}{
		{10, "init-0.mp4 0.m4s 1.m4s 2.m4s 3.m4s init-4.mp4 4.m4s 5.m4s"},
		{3, "init-0.mp4 3.m4s init-4.mp4 4.m4s 5.m4s"},
		{2, "init-4.mp4 4.m4s 5.m4s"},
		{1, "init-4.mp4 5.m4s"},
	} {
		if got := names(keptSegments(list, c.keep)); got != c.want {
			t.Errorf("keep %d: %s, want %s", c.keep, got, c.want)
		}
	}
}
