package signaling

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// fakeLocal is a LocalPeer that answers every offer unless told otherwise.
type fakeLocal struct {
	want   atomic.Bool
	block  atomic.Bool // HandleOffer waits for ctx instead of answering
	fail   atomic.Bool
	offers chan Offer
}

func newFakeLocal() *fakeLocal {
	f := &fakeLocal{offers: make(chan Offer, 64)}
	f.want.Store(true)
	return f
}

func (f *fakeLocal) WantOffer(infoHash, from ID) bool { return f.want.Load() }

func (f *fakeLocal) HandleOffer(ctx context.Context, o Offer) (string, error) {
	f.offers <- o
	if f.block.Load() {
		<-ctx.Done()
		return "", ctx.Err()
	}
	if f.fail.Load() {
		return "", errors.New("no thanks")
	}
	return "local answer to " + o.OfferID.String(), nil
}

func (f *fakeLocal) nextOffer(t *testing.T) Offer {
	t.Helper()
	select {
	case o := <-f.offers:
		return o
	case <-time.After(waitTimeout):
		t.Fatal("no offer reached the local peer")
	}
	return Offer{}
}

func TestLocalPeerReceivesOffers(t *testing.T) {
	s, url := newTestServer(t, testConfig())
	lid, ih := testID(99), testID(1)
	f := newFakeLocal()
	s.AttachLocal(lid, f)
	s.Join(ih)
	pa, pb := testID(2), testID(3)
	a, b := dialRaw(t, url), dialRaw(t, url)
	if r := b.announce(ih, pb, nil); num(r["complete"]) != 1 || num(r["incomplete"]) != 1 {
		t.Fatalf("local peer not counted as seeder: %v", r)
	}
	b.send(msg{"action": "scrape", "info_hash": bin(ih)})
	if f := b.next()["files"].(map[string]any)[bin(ih)].(map[string]any); num(f["complete"]) != 1 {
		t.Fatalf("scrape %v", f)
	}

	// First offer to the local peer, the second to b.
	a.announce(ih, pa, msg{"offers": offersList(testID(10), testID(11))})
	o := f.nextOffer(t)
	if o.InfoHash != ih || o.PeerID != pa || o.OfferID != testID(10) || o.SDP != "v=0 offer "+testID(10).String() {
		t.Fatalf("local got %+v", o)
	}
	if m := b.next(); m["offer_id"] != bin(testID(11)) {
		t.Fatalf("b got %v", m)
	}
	ans := a.next()
	if ans["peer_id"] != bin(lid) || ans["to_peer_id"] != bin(pa) || ans["offer_id"] != bin(testID(10)) ||
		ans["answer"].(map[string]any)["sdp"] != "local answer to "+testID(10).String() {
		t.Fatalf("a got %v", ans)
	}

	// WantOffer false: the offer goes to a socket peer instead.
	f.want.Store(false)
	before := s.Stats().OffersRelayed
	a.announce(ih, pa, msg{"offers": offersList(testID(12))})
	if m := b.next(); m["offer_id"] != bin(testID(12)) {
		t.Fatalf("b got %v", m)
	}
	a.expectNothing()
	if got := s.Stats().OffersRelayed - before; got != 1 || len(f.offers) != 0 {
		t.Fatalf("%d relayed, %d at local", got, len(f.offers))
	}

	// Socket peers cannot pose as the local peer.
	a.send(announceMsg(ih, lid, nil))
	a.expectFailure("announce", bin(ih), "reserved")

	// After Leave: no local offers, not counted.
	f.want.Store(true)
	s.Leave(ih)
	if r := a.announce(ih, pa, msg{"offers": offersList(testID(13))}); num(r["complete"]) != 0 {
		t.Fatalf("after Leave %v", r)
	}
	if m := b.next(); m["offer_id"] != bin(testID(13)) {
		t.Fatalf("b got %v", m)
	}
	if len(f.offers) != 0 {
		t.Fatal("offer reached the local peer after Leave")
	}
}

func TestLocalPeerFailingAndBlocking(t *testing.T) {
	s, url := newTestServer(t, testConfig())
	lid, ih := testID(99), testID(1)
	f := newFakeLocal()
	s.AttachLocal(lid, f)
	s.Join(ih)
	a := dialRaw(t, url)
	f.fail.Store(true)
	a.announce(ih, testID(2), msg{"offers": offersList(testID(10))})
	f.nextOffer(t)
	a.expectNothing()
	// A HandleOffer still running when the server closes gets its ctx cancelled;
	// the leak check proves Close waited for it.
	f.fail.Store(false)
	f.block.Store(true)
	a.announce(ih, testID(2), msg{"offers": offersList(testID(11))})
	f.nextOffer(t)
	_ = s.Close()
}

func TestSendOffer(t *testing.T) {
	s, url := newTestServer(t, testConfig())
	ctx := context.Background()
	lid, ih := testID(99), testID(1)
	pb, pc := testID(3), testID(4)
	b, c := dialRaw(t, url), dialRaw(t, url)
	b.announce(ih, pb, nil)
	c.announce(ih, pc, nil)

	if _, err := s.SendOffer(ctx, ih, pb, "x"); !errors.Is(err, ErrNoLocalPeer) {
		t.Fatalf("before AttachLocal: %v", err)
	}
	s.AttachLocal(lid, newFakeLocal())
	if _, err := s.SendOffer(ctx, ih, pb, "x"); !errors.Is(err, ErrNotJoined) {
		t.Fatalf("before Join: %v", err)
	}
	s.Join(ih)
	if _, err := s.SendOffer(ctx, ih, testID(50), "x"); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("unknown peer: %v", err)
	}

	sendAsync := func(ctx context.Context, to ID) chan sendResult { return sendOfferAsync(ctx, s, ih, to) }
	wait := func(ch chan sendResult) sendResult { t.Helper(); return waitSend(t, ch) }

	// Round trip, with a spoofed answer refused on the way.
	done := sendAsync(ctx, pb)
	o := b.next()
	if o["peer_id"] != bin(lid) || o["offer"].(map[string]any)["sdp"] != "local offer" {
		t.Fatalf("b got %v", o)
	}
	oid, err := parseBinaryID(o["offer_id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	c.answer(ih, pc, lid, oid, "spoof")
	c.expectFailure("announce", bin(ih), "no pending offer")
	b.answer(ih, pb, lid, oid, "b answer")
	if r := wait(done); r.err != nil || r.sdp != "b answer" {
		t.Fatalf("SendOffer = %q, %v", r.sdp, r.err)
	}
	b.expectNothing()

	// ctx ends first.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if r := wait(sendAsync(short, pb)); !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("ctx: %v", r.err)
	}
	b.next()
	// The peer's socket closes while we wait.
	done = sendAsync(ctx, pc)
	c.next()
	_ = c.ws.Close()
	if r := wait(done); !errors.Is(r.err, ErrPeerGone) {
		t.Fatalf("peer gone: %v", r.err)
	}
	// The server closes while we wait.
	done = sendAsync(ctx, pb)
	b.next()
	_ = s.Close()
	if r := wait(done); !errors.Is(r.err, ErrClosed) && !errors.Is(r.err, ErrPeerGone) {
		t.Fatalf("server closed: %v", r.err)
	}
	if _, err := s.SendOffer(ctx, ih, pb, "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.localOffers) != 0 {
		t.Fatalf("%d local offers left behind", len(s.localOffers))
	}
}

type sendResult struct {
	sdp string
	err error
}

func sendOfferAsync(ctx context.Context, s *Server, ih, to ID) chan sendResult {
	ch := make(chan sendResult, 1)
	go func() {
		sdp, err := s.SendOffer(ctx, ih, to, "local offer")
		ch <- sendResult{sdp, err}
	}()
	return ch
}

func waitSend(t *testing.T, ch chan sendResult) sendResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitTimeout):
		t.Fatal("SendOffer did not return")
	}
	return sendResult{}
}

func TestSendOfferTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.OfferTimeout = 30 * time.Millisecond
	s, url := newTestServer(t, cfg)
	lid, ih, pb := testID(99), testID(1), testID(3)
	s.AttachLocal(lid, newFakeLocal())
	s.Join(ih)
	b := dialRaw(t, url)
	b.announce(ih, pb, nil)
	if r := waitSend(t, sendOfferAsync(context.Background(), s, ih, pb)); !errors.Is(r.err, ErrOfferTimeout) {
		t.Fatalf("unanswered: %v", r.err)
	}
	o := b.next()
	oid, _ := parseBinaryID(o["offer_id"].(string))
	b.answer(ih, pb, lid, oid, "late")
	b.expectFailure("announce", bin(ih), "no pending offer")
}

// A peer that moves to a new socket can still answer; one that stops cannot.
func TestSendOfferFollowsPeer(t *testing.T) {
	s, url := newTestServer(t, testConfig())
	ctx := context.Background()
	lid, ih, pb := testID(99), testID(1), testID(3)
	s.AttachLocal(lid, newFakeLocal())
	s.Join(ih)
	old, cur := dialRaw(t, url), dialRaw(t, url)
	old.announce(ih, pb, nil)
	done := sendOfferAsync(ctx, s, ih, pb)
	oid, _ := parseBinaryID(old.next()["offer_id"].(string))
	cur.announce(ih, pb, nil)
	_ = old.ws.Close()
	waitFor(t, "old socket gone", func() bool { return s.Stats().Sockets == 1 })
	cur.answer(ih, pb, lid, oid, "from the new socket")
	if r := waitSend(t, done); r.err != nil || r.sdp != "from the new socket" {
		t.Fatalf("SendOffer = %+v", r)
	}

	done = sendOfferAsync(ctx, s, ih, pb)
	cur.next()
	cur.announce(ih, pb, msg{"event": "stopped"})
	if r := waitSend(t, done); !errors.Is(r.err, ErrPeerGone) {
		t.Fatalf("after stopped: %v", r.err)
	}
}

// watchingLocal is a fakeLocal that also hears of announces.
type watchingLocal struct {
	*fakeLocal
	announced chan announced
}

type announced struct {
	infoHash ID
	state    PeerState
}

func (w *watchingLocal) PeerAnnounced(infoHash ID, p PeerState) {
	w.announced <- announced{infoHash, p}
}

// The local peer hears of every announce in the swarms it joined, with what the peer said of
// itself, except one whose offer it was handed (it answers that one already).
func TestPeerWatcher(t *testing.T) {
	checkGoroutines(t)
	s, url := newTestServer(t, testConfig())
	lid, ih, other := testID(99), testID(1), testID(7)
	w := &watchingLocal{fakeLocal: newFakeLocal(), announced: make(chan announced, 16)}
	s.AttachLocal(lid, w)
	s.Join(ih)
	next := func() announced {
		t.Helper()
		select {
		case a := <-w.announced:
			return a
		case <-time.After(waitTimeout):
			t.Fatal("PeerAnnounced not called")
		}
		return announced{}
	}
	none := func() {
		t.Helper()
		select {
		case a := <-w.announced:
			t.Fatalf("unexpected PeerAnnounced %+v", a)
		default:
		}
	}
	a := dialRaw(t, url)
	pa, pb := testID(2), testID(3)

	a.announce(other, pa, msg{"left": 0}) // not joined: not the local peer's business
	a.expectNothing()
	none()

	a.announce(ih, pa, msg{"event": "started", "left": 0, "uploaded": 5, "downloaded": 7})
	if got := next(); got.infoHash != ih || got.state != (PeerState{ID: pa, Seeder: true, Left: 0, Uploaded: 5, Downloaded: 7}) {
		t.Fatalf("seeder announce: %+v", got)
	}
	a.announce(ih, pb, msg{"left": nil})
	if got := next(); got.state != (PeerState{ID: pb, Left: -1}) {
		t.Fatalf("announce without metadata: %+v", got)
	}
	a.announce(ih, pb, msg{"left": 300, "downloaded": 100})
	if got := next(); got.state != (PeerState{ID: pb, Left: 300, Downloaded: 100}) {
		t.Fatalf("leecher announce: %+v", got)
	}

	// Its offer went to the local peer: no call.
	a.announce(ih, pb, msg{"offers": offersList(testID(20))})
	w.nextOffer(t)
	if m := a.next(); m["answer"] == nil {
		t.Fatalf("want the local answer, got %v", m)
	}
	a.expectNothing()
	none()
	// Declined offers go elsewhere, and the local peer hears of the announce.
	w.want.Store(false)
	a.announce(ih, pb, msg{"offers": offersList(testID(21))})
	if got := next(); got.state.ID != pb {
		t.Fatalf("announce with declined offers: %+v", got)
	}
	// Stopping is no news.
	a.announce(ih, pb, msg{"event": "stopped"})
	a.expectNothing()
	none()

	got := s.SwarmPeers(ih)
	if len(got) != 1 || got[0] != (PeerState{ID: pa, Seeder: true, Left: 0, Uploaded: 5, Downloaded: 7}) {
		t.Fatalf("SwarmPeers = %+v", got)
	}
	if got := s.SwarmPeers(testID(250)); got != nil {
		t.Fatalf("SwarmPeers of an unknown swarm = %+v", got)
	}
}
