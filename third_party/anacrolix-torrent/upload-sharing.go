package torrent

import (
	"math/rand"
	"time"

	"github.com/anacrolix/log"
	"github.com/anacrolix/missinggo/v2/bitmap"
	"golang.org/x/time/rate"

	"github.com/anacrolix/torrent/bencode"
	pp "github.com/anacrolix/torrent/peer_protocol"
)

// swarmgate patch: a seed among peers that trade with each other (browsers) sends each piece to
// as few of them as it can: super-seeding (BEP 16) by what it advertises.
//
// A trading conn that speaks the fast extension hears HaveNone instead of our bitfield, and then
// a Have for each piece we choose to let it ask for:
//
//   - fresh pieces, that no trading peer holds or has been offered yet, lowest index first,
//     UploadSharingFresh bytes of them outstanding per conn, and under an upload cap about
//     UploadSharingFreshTime of the cap's time of them on their way in all: each piece enters
//     the swarm once, as soon as it can, and the peers pass it on;
//   - the pieces at the peer's front (UploadSharingFront bytes from the first piece it lacks, and
//     from the one after the last it got: where a sequential or streaming client reads; or, for a
//     peer that says where its player reads (UploadSharingNeedsExtension), from there): a fresh
//     one goes to that peer first; while the uplink has room (Busy false) any after
//     sharingRoomWait; while busy one that other trading peers hold once the peer has gone
//     without it for UploadSharingStuckAfter (it is not connected to them, or they are slow;
//     longer for a downloader whose pieces come slowly, sharingStuckAfter), or
//     UploadSharingSlowAfter when it is on its way to another who has not got it yet. So a peer
//     whose player needs a piece never waits long for it, whoever holds it.
//
// Sends of pieces at a peer's front go first: other conns leave the cap's turns to them
// (sharingYield). A Have cannot be taken back, so what a conn was offered it may always have. A
// request for a piece we have not offered (the peer cannot know we hold it) is rejected (BEP 6).

// UploadSharingNeedsExtension is the BEP 10 extension by which a peer tells us the piece its
// player waits on: a bencoded dictionary {"piece": index}, sent again when that changes. Its
// front is then the pieces from there, not from the first it lacks (a page that began on HTTP
// and hands over to its torrent stream half a minute in needs those, not the film's start). We
// advertise it in the extended handshake when UploadSharing is on; a peer that never sends it
// has the guessed fronts.
const UploadSharingNeedsExtension pp.ExtensionName = "sg_needs"

// UploadSharing is ClientConfig.UploadSharing.
type UploadSharing struct {
	// Busy says whether the uplink is saturated now. Called with the client lock held: it must
	// not block.
	Busy func() bool
	// Trades says whether a peer on a conn of this network trades pieces with the torrent's
	// other such peers (browsers over WebRTC do; a native peer may not know them).
	Trades func(network string) bool
}

const (
	// UploadSharingStuckAfter is how long a peer may lack a piece at its front that other
	// trading peers hold before we offer it ourselves (at least: sharingStuckAfter).
	UploadSharingStuckAfter = 2 * time.Second
	// UploadSharingSlowAfter is how long a piece at a peer's front may be on its way to another
	// trading peer, held by none yet, before we offer it to this one too.
	UploadSharingSlowAfter = 6 * time.Second
	// UploadSharingFresh is how many bytes of fresh pieces a conn may have been offered and not
	// yet got (at least two pieces).
	UploadSharingFresh = 1 << 20
	// UploadSharingFreshTime bounds, under an upload cap, the fresh pieces on their way to all
	// trading peers together: about this much of the cap's time (at least two pieces). The cap
	// then sends them one after another at its whole rate, not all at once at a fraction of it
	// each, so each enters the swarm, and can be passed on, as soon as it can. Pieces at a peer's
	// front are offered beyond it.
	UploadSharingFreshTime = 2 * time.Second
	// UploadSharingFront is the span of a peer's front, in bytes (at least two pieces): about a
	// second of a video's bitrate.
	UploadSharingFront = 512 << 10
	// sharingTick is how often the offers are looked at again while a conn lacks pieces, and
	// sharingSoon how soon after something changed.
	sharingTick = 250 * time.Millisecond
	sharingSoon = 20 * time.Millisecond
	// sharingRoomWait: while the uplink has room, a piece at a peer's front that other trading
	// peers hold is offered this soon (they get the first chance).
	sharingRoomWait = 500 * time.Millisecond
	// sharingOfferGrace: a fresh piece offered this recently counts as on its way (for
	// UploadSharingFreshTime) before its peer asks for it.
	sharingOfferGrace = time.Second
	// sharingUrgentHold: after a chunk of a piece at a peer's front is queued for the uplink,
	// other conns leave the cap's next turns to it for this long (sharingYield).
	sharingUrgentHold = 100 * time.Millisecond
)

// UploadSharingStats counts what upload sharing did.
type UploadSharingStats struct {
	Fresh     int64 // pieces offered first to one trading peer
	Front     int64 // pieces offered to a peer whose front they were (Busy false, stuck or slow)
	Withheld  int64 // times a trading conn was sent HaveNone instead of what we hold
	Declined  int64 // requests rejected for pieces we had not offered
	Escalated int64 // of Front, those offered while Busy (stuck or slow)
	Told      int64 // UploadSharingNeedsExtension messages: where a peer's player reads
}

// sharingConn is upload sharing's view of one trading conn whose offers it decides.
type sharingConn struct {
	since      time.Time                // when it started
	lastGot    pieceIndex               // the last piece it said it got, -1 before any
	got        int                      // pieces it said it got (Haves)
	firstGot   time.Time                // when it said it got the first
	lastGotAt  time.Time                // and the last
	needs      pieceIndex               // the piece its player waits on, -1 until it says (UploadSharingNeedsExtension)
	frontSince map[pieceIndex]time.Time // when each piece now at its front got there
	urgent     map[pieceIndex]struct{}  // pieces offered at its front that it lacks still
}

// torrentSharing is upload sharing's state for one torrent.
type torrentSharing struct {
	timer     *time.Timer
	heldSince []time.Time // per piece: since when some trading peer holds it (zero: none does)
	sentSince []time.Time // per piece: since when it is on its way to one (zero: to none)
}

// sharingStart decides, in sendInitialMessages, whether we choose what the conn hears we have;
// if so it tells the peer HaveNone.
func (pc *PeerConn) sharingStart() bool {
	us := pc.t.cl.config.UploadSharing
	if us == nil || !pc.fastEnabled() || !us.Trades(pc.Network) {
		return false
	}
	pc.write(pp.Message{Type: pp.HaveNone})
	pc.sentHaves.Clear()
	pc.sharing = &sharingConn{since: time.Now(), lastGot: -1, needs: -1}
	pc.t.cl.sharingStats.Withheld++
	pc.t.sharingSoon()
	return true
}

// declineRequest says whether to reject r: a piece we have not offered the conn. Called with the
// client lock held, once r is known to be valid and ours to serve.
func (c *PeerConn) declineRequest(r Request) bool {
	if c.sharing == nil || c.sentHaves.Get(bitmap.BitIndex(r.Index)) {
		return false
	}
	c.t.cl.sharingStats.Declined++
	return true
}

// sharingPeerGot notes a piece the peer says it got (a Have).
func (c *PeerConn) sharingPeerGot(piece pieceIndex) {
	if c.sharing != nil {
		c.sharing.lastGot = piece
		now := time.Now()
		if c.sharing.got == 0 {
			c.sharing.firstGot = now
		}
		c.sharing.got++
		c.sharing.lastGotAt = now
	}
	c.t.sharingSoon()
}

// sharingPeerNeeds takes an UploadSharingNeedsExtension message: the piece the peer's player
// waits on becomes its front. A malformed one is ignored (it costs the peer its hint, nothing
// else).
func (c *PeerConn) sharingPeerNeeds(payload []byte) {
	if c.sharing == nil {
		return
	}
	var m struct {
		Piece *int64 `bencode:"piece"`
	}
	if err := bencode.Unmarshal(payload, &m); err != nil || m.Piece == nil || *m.Piece < 0 ||
		(c.t.haveInfo() && *m.Piece >= int64(c.t.numPieces())) {
		c.protocolLogger.Levelf(log.Debug, "ignoring %s message %q", UploadSharingNeedsExtension, payload)
		return
	}
	c.sharing.needs = pieceIndex(*m.Piece)
	c.t.cl.sharingStats.Told++
	c.t.sharingSoon()
}

// UploadSharingStats returns what upload sharing has done so far.
func (cl *Client) UploadSharingStats() UploadSharingStats {
	cl.rLock()
	defer cl.rUnlock()
	return cl.sharingStats
}

// DeclinedRequests counts the requests turned down for UploadSharing.
func (cl *Client) DeclinedRequests() int64 { return cl.UploadSharingStats().Declined }

// sharingSoon has the offers looked at shortly (coalescing bursts of changes).
func (t *Torrent) sharingSoon() {
	t.sharingAfter(sharingSoon)
}

func (t *Torrent) sharingAfter(d time.Duration) {
	if t.cl.config.UploadSharing == nil || t.closed.IsSet() {
		return
	}
	if t.sharing == nil {
		t.sharing = &torrentSharing{}
	}
	s := t.sharing
	if s.timer != nil {
		return
	}
	s.timer = time.AfterFunc(d, func() {
		t.cl.lock()
		defer t.cl.unlock()
		s.timer = nil
		if t.closed.IsSet() {
			return
		}
		if t.sharingUpdate() {
			t.sharingAfter(sharingTick)
		}
	})
}

// sharingStop ends the torrent's timer (the torrent closes).
func (t *Torrent) sharingStop() {
	if t.sharing != nil && t.sharing.timer != nil {
		t.sharing.timer.Stop()
		t.sharing.timer = nil
	}
}

// sharingUpdate offers pieces to the conns whose offers we decide. It reports whether one of
// them still lacks pieces (so it is worth looking again).
func (t *Torrent) sharingUpdate() (again bool) {
	us := t.cl.config.UploadSharing
	if !t.haveInfo() {
		return true
	}
	n := t.numPieces()
	s := t.sharing
	if len(s.heldSince) != n {
		s.heldSince, s.sentSince = make([]time.Time, n), make([]time.Time, n)
	}
	now := time.Now()
	held := make([]int32, n)     // trading peers holding each piece
	sent := make([]int32, n)     // conns offered each piece and not holding it
	requested := make([]bool, n) // pieces a trading peer has asked us for and not got yet
	var conns []*PeerConn
	for c := range t.conns {
		if c.closed.IsSet() || !us.Trades(c.Network) {
			continue
		}
		if all, known := c.peerHasAllPieces(); all && known {
			for i := range held {
				held[i]++
			}
			continue
		}
		c.peerPieces().Iterate(func(x uint32) bool {
			if int(x) < n {
				held[x]++
			}
			return true
		})
		for r := range c.unreadPeerRequests {
			if int(r.Index) < n {
				requested[r.Index] = true
			}
		}
		for r := range c.readyPeerRequests {
			if int(r.Index) < n {
				requested[r.Index] = true
			}
		}
		if c.sharing != nil {
			conns = append(conns, c)
			c.sentHaves.IterTyped(func(p int) bool {
				if p < n && !c.peerHasPiece(p) {
					sent[p]++
				}
				return true
			})
		}
	}
	for p := range n {
		if held[p] == 0 {
			s.heldSince[p] = time.Time{}
		} else if s.heldSince[p].IsZero() {
			s.heldSince[p] = now
		}
		if sent[p] == 0 {
			s.sentSince[p] = time.Time{}
		}
	}
	busy := us.Busy()
	pieces := func(bytes int) int { return max(2, (bytes+int(t.info.PieceLength)-1)/int(t.info.PieceLength)) }
	frontSpan, freshSpan := pieces(UploadSharingFront), pieces(UploadSharingFresh)
	rand.Shuffle(len(conns), func(i, j int) { conns[i], conns[j] = conns[j], conns[i] })
	// Fronts first, so that a fresh piece at a peer's front goes to that peer and not, as a
	// fresh piece, to another.
	outstanding := make([]int, len(conns))
	for i, c := range conns {
		var lacks bool
		outstanding[i], lacks = t.sharingFront(c, held, sent, frontSpan, busy, now)
		again = again || lacks
	}
	// Fresh pieces on their way: no trading peer holds them, and a peer has asked us for them or
	// was offered them under sharingOfferGrace ago (its request may be coming). An offer nobody
	// asks for (a peer that does not want the piece, or not yet) does not hold the budget.
	inFlight := 0
	for p := range n {
		if held[p] == 0 && sent[p] > 0 && (requested[p] || now.Sub(s.sentSince[p]) < sharingOfferGrace) {
			inFlight++
		}
	}
	budget := n
	if l := t.cl.config.UploadRateLimiter.Limit(); l != rate.Inf && l > 0 {
		budget = max(2, int(float64(l)*UploadSharingFreshTime.Seconds()/float64(t.info.PieceLength)))
	}
	for i, c := range conns {
		inFlight += t.sharingFresh(c, held, sent, min(freshSpan, outstanding[i]+budget-inFlight), outstanding[i], now)
	}
	return again
}

// sharingOfferPiece tells c we have piece p.
func (t *Torrent) sharingOfferPiece(c *PeerConn, p pieceIndex, sent []int32, now time.Time) {
	c.write(pp.Message{Type: pp.Have, Index: pp.Integer(p)})
	c.sentHaves.Add(bitmap.BitIndex(p))
	sent[p]++
	if t.sharing.sentSince[p].IsZero() {
		t.sharing.sentSince[p] = now
	}
}

// sharingFront offers c the pieces at its front that it should hear we have now (see the top of
// this file). It returns how many pieces c has been offered and lacks, and whether it lacks any.
func (t *Torrent) sharingFront(c *PeerConn, held, sent []int32, span int, busy bool, now time.Time) (outstanding int, lacks bool) {
	n := t.numPieces()
	wanted := func(p pieceIndex) bool { return !c.peerHasPiece(p) }
	c.sentHaves.IterTyped(func(p int) bool {
		if p < n && wanted(p) {
			outstanding++
		}
		return true
	})

	// The front: the first pieces it lacks from where its player reads, if it said; else (or
	// when it holds all from there) the first it lacks, and the first it lacks after the last it
	// got.
	front := make([]pieceIndex, 0, 2*span)
	collect := func(from pieceIndex) {
		for p, k := from, 0; p < n && k < span; p++ {
			if wanted(p) {
				k++
				if !containsPiece(front, p) {
					front = append(front, p)
				}
			}
		}
	}
	if c.sharing.needs >= 0 {
		collect(c.sharing.needs)
	}
	if len(front) == 0 {
		collect(0)
		if len(front) == 0 {
			return 0, false // it has everything
		}
		if c.sharing.lastGot >= 0 {
			collect(c.sharing.lastGot + 1)
		}
	}
	for p := range c.sharing.urgent {
		if !wanted(p) {
			delete(c.sharing.urgent, p)
		}
	}
	since := c.sharing.frontSince
	for p := range since {
		if !containsPiece(front, p) {
			delete(since, p)
		}
	}
	if since == nil {
		since = make(map[pieceIndex]time.Time)
		c.sharing.frontSince = since
	}
	stuckAfter := t.sharingStuckAfter(c)
	for _, p := range front {
		at, ok := since[p]
		if !ok {
			at = now
			since[p] = at
		}
		if c.sentHaves.Get(bitmap.BitIndex(p)) || !t.havePiece(p) {
			continue
		}
		waited := now.Sub(latest(at, c.sharing.since))
		switch {
		case held[p] == 0 && sent[p] == 0:
			t.cl.sharingStats.Fresh++
		case !busy && (held[p] == 0 || waited >= sharingRoomWait):
			t.cl.sharingStats.Front++
		case held[p] > 0 && waited >= stuckAfter && now.Sub(t.sharing.heldSince[p]) >= stuckAfter,
			held[p] == 0 && waited >= UploadSharingSlowAfter && now.Sub(t.sharing.sentSince[p]) >= UploadSharingSlowAfter:
			t.cl.sharingStats.Front++
			t.cl.sharingStats.Escalated++
		default:
			continue
		}
		t.sharingOfferPiece(c, p, sent, now)
		if c.sharing.urgent == nil {
			c.sharing.urgent = make(map[pieceIndex]struct{})
		}
		c.sharing.urgent[p] = struct{}{}
		outstanding++
	}
	return outstanding, true
}

// sharingStuckAfter is how long c may lack a piece at its front that other trading peers hold
// before we offer it ourselves while busy: UploadSharingStuckAfter for a peer that said where its
// player reads (a player has a deadline); for another (a downloader, as far as we can tell), the
// time two pieces took it at the rate it got them, within UploadSharingStuckAfter and
// UploadSharingSlowAfter, and UploadSharingSlowAfter until it has got two. Why: ten plain
// webtorrent pages fetching a film of 256 KiB pieces from each other at about 100 KB/s each were
// "stuck" after 2 s on nearly every piece, and the gateway sent 2.5 copies of the film.
func (t *Torrent) sharingStuckAfter(c *PeerConn) time.Duration {
	s := c.sharing
	if s.needs >= 0 {
		return UploadSharingStuckAfter
	}
	if s.got < 2 {
		return UploadSharingSlowAfter
	}
	// The pieces after the first, over the time from it to the last: how fast it got them while
	// it did (a peer stuck since then is not made to wait longer for it).
	rate := float64(s.got-1) * float64(t.info.PieceLength) / max(s.lastGotAt.Sub(s.firstGot).Seconds(), 0.001)
	d := time.Duration(2 * float64(t.info.PieceLength) / rate * float64(time.Second))
	return min(max(d, UploadSharingStuckAfter), UploadSharingSlowAfter)
}

// sharingFresh offers c fresh pieces, lowest first, until it has span outstanding, and says how
// many it offered.
func (t *Torrent) sharingFresh(c *PeerConn, held, sent []int32, span, outstanding int, now time.Time) (offered int) {
	for p := pieceIndex(0); p < t.numPieces() && outstanding < span; p++ {
		if held[p] == 0 && sent[p] == 0 && !c.peerHasPiece(p) && t.havePiece(p) {
			t.cl.sharingStats.Fresh++
			t.sharingOfferPiece(c, p, sent, now)
			outstanding++
			offered++
		}
	}
	return offered
}

// sharingYield says whether the conn, about to send a chunk for r, should leave the upload cap's
// next turns to another: a conn sending a piece at its peer's front (a player's next piece, or one
// it has gone without) goes first; the others yield while such sends keep coming, for up to
// sharingUrgentHold (or three chunks' time at the cap's rate) after the last. A conn already holding its turn (a reservation) keeps it.
// Called with the client lock held; the delay is how long to wait before looking again.
func (c *PeerConn) sharingYield(r Request) (yield bool, delay time.Duration) {
	cl := c.t.cl
	now := time.Now()
	if c.sharing != nil {
		if _, ok := c.sharing.urgent[pieceIndex(r.Index)]; ok {
			// At least a few chunks' time at the cap's rate, or the hold would lapse before the
			// conn's next turn.
			hold := sharingUrgentHold
			if l := cl.config.UploadRateLimiter.Limit(); l != rate.Inf && l > 0 {
				hold = max(hold, time.Duration(3*float64(r.Length)/float64(l)*float64(time.Second)))
			}
			cl.sharingUrgentUntil = now.Add(hold)
			return false, 0
		}
	}
	if c.uploadReservation != nil || !now.Before(cl.sharingUrgentUntil) {
		return false, 0
	}
	return true, cl.sharingUrgentUntil.Sub(now)
}

func containsPiece(ps []pieceIndex, p pieceIndex) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
