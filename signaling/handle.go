package signaling

import (
	"encoding/json"
	"fmt"
	"time"
)

type event int

const (
	eventUpdate event = iota
	eventStarted
	eventCompleted
	eventStopped
)

func parseEvent(raw json.RawMessage) (event, error) {
	s, _, err := stringField(raw, "event")
	if err != nil {
		return 0, err
	}
	switch s {
	case "", "empty", "update":
		return eventUpdate, nil
	case "started":
		return eventStarted, nil
	case "completed":
		return eventCompleted, nil
	case "stopped":
		return eventStopped, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownEvent, s)
}

// wireOffer is one parsed entry of an announce's offers.
type wireOffer struct {
	id  ID
	sdp sdpText
}

// handle serves one client message. Anything wrong with it gets a failure
// reply and leaves the socket open.
func (s *Server) handle(c *conn, data []byte) {
	var m inMessage
	if err := decodeMessage(data, &m); err != nil {
		c.failure(actionAnnounce, "", fmt.Errorf("%w: not a JSON object", ErrBadMessage))
		return
	}
	action, _, actionErr := stringField(m.Action, "action")
	// Echo the request's info_hash when it is a string, even an invalid one:
	// clients match replies to their torrents by it.
	echoIH, _, _ := stringField(m.InfoHash, "info_hash")
	if actionErr != nil {
		c.failure(actionAnnounce, echoIH, actionErr)
		return
	}
	if s.cfg.Bus != nil && !c.elsewhere() {
		// A socket of this node: a swarm owned elsewhere is served there. Messages from other
		// nodes' sockets are always served here, so that nothing goes round in circles.
		node := s.ownerElsewhere(action, &m)
		if action == actionAnnounce && isAbsent(m.Answer) {
			if ih, err := idField(m.InfoHash, "info_hash"); err == nil {
				owner := node
				if owner == "" {
					owner = s.cfg.Bus.Self()
				}
				s.noteAnnounce(c, ih, &m, owner)
			}
		}
		if node != "" {
			s.forward(c, node, data)
			return
		}
	}
	var err error
	switch action {
	case actionAnnounce:
		if !isAbsent(m.Answer) {
			err = s.answer(c, &m)
		} else {
			err = s.announce(c, &m)
		}
	case actionScrape:
		err = s.scrape(c, &m)
	default:
		err = fmt.Errorf("%w: %q", ErrUnknownAction, action)
	}
	if err != nil {
		c.failure(action, echoIH, err)
	}
}

// ownerElsewhere names the node owning the swarm m is for when that is not this one; "" when it
// is this one, or when m is not well-formed enough to say (it then fails here). A scrape of
// several swarms is answered here, from the swarms this node holds.
func (s *Server) ownerElsewhere(action string, m *inMessage) string {
	if action != actionAnnounce && action != actionScrape {
		return ""
	}
	ih, err := idField(m.InfoHash, "info_hash")
	if err != nil {
		return ""
	}
	if node := s.cfg.Bus.Owner(ih); node != s.cfg.Bus.Self() {
		return node
	}
	return ""
}

func (s *Server) announce(c *conn, m *inMessage) error {
	ih, err := idField(m.InfoHash, "info_hash")
	if err != nil {
		return err
	}
	if s.cfg.AllowInfoHash != nil && !s.cfg.AllowInfoHash(ih) {
		s.infoHashesRefused.Add(1)
		return ErrInfoHashNotAllowed
	}
	pid, err := idField(m.PeerID, "peer_id")
	if err != nil {
		return err
	}
	ev, err := parseEvent(m.Event)
	if err != nil {
		return err
	}
	// left is null when the client does not know the size yet (JSON has no Infinity).
	var left *float64
	if !isAbsent(m.Left) {
		f, ok := number(m.Left)
		if !ok {
			return fmt.Errorf("%w: left is not a number", ErrBadMessage)
		}
		left = &f
	}
	seeder := ev == eventCompleted || (left != nil && *left == 0)
	offers, err := s.parseOffers(m.Offers)
	if err != nil {
		return err
	}
	s.announces.Add(1)

	now := time.Now()
	s.mu.Lock()
	if s.local != nil && pid == s.localID {
		s.mu.Unlock()
		return ErrReservedPeerID
	}
	sw := s.swarms[ih]
	if ev == eventStopped {
		if sw != nil {
			// Only the socket a peer_id is bound to may stop it.
			if p := sw.peers[pid]; p != nil && p.c == c {
				s.removePeer(ih, sw, p)
				s.dropIfEmpty(ih, sw)
			}
		}
		complete, incomplete := s.counts(s.swarms[ih])
		s.mu.Unlock()
		s.reply(c, ih, complete, incomplete)
		return nil
	}
	if err := s.upsertPeer(c, ih, sw, pid, ev, seeder, now); err != nil {
		s.mu.Unlock()
		return err
	}
	sw = s.swarms[ih]
	var state PeerState
	if p := sw.peers[pid]; p != nil {
		p.uploaded, p.downloaded = counter(m.Uploaded), counter(m.Downloaded)
		p.left = leftBytes(left)
		state = p.state()
	}
	complete, incomplete := s.counts(sw)
	local, localJoined := s.local, sw.local
	s.mu.Unlock()

	s.reply(c, ih, complete, incomplete)
	sent, dropped := c.takeOffers(len(offers))
	offers = offers[:sent]
	offeredLocal := false
	if len(offers) > 0 {
		// WantOffer runs without locks: it may look at the local peer's own state.
		if local != nil && localJoined && local.WantOffer(ih, pid) {
			s.offerToLocal(local, Offer{InfoHash: ih, PeerID: pid, OfferID: offers[0].id, SDP: offers[0].sdp.String()})
			offers = offers[1:]
			offeredLocal = true
		}
		s.relayOffers(c, ih, pid, offers, now)
	}
	// A peer that offered to the local peer is being answered already; any other may be worth an
	// offer of the local peer's own (a seeder makes offers only every interval).
	if w, ok := local.(PeerWatcher); ok && localJoined && !offeredLocal {
		w.PeerAnnounced(ih, state)
	}
	if dropped > 0 {
		s.offersDropped.Add(uint64(dropped))
		return fmt.Errorf("%w: %d of %d offers dropped (max %g per second per socket); the announce counted",
			ErrOfferRate, dropped, sent+dropped, s.cfg.OffersPerSecond)
	}
	return nil
}

// takeOffers spends the socket's offer tokens on up to n offers: how many may go and how many
// are dropped.
func (c *conn) takeOffers(n int) (sent, dropped int) {
	if c.offers == nil {
		return n, 0
	}
	now := time.Now()
	for sent < n && c.offers.AllowN(now, 1) {
		sent++
	}
	return sent, n - sent
}

// upsertPeer adds pid to the swarm or refreshes it, binding it to c. Caller holds s.mu.
func (s *Server) upsertPeer(c *conn, ih ID, sw *swarm, pid ID, ev event, seeder bool, now time.Time) error {
	var p *peer
	if sw != nil {
		p = sw.peers[pid]
	}
	b := binding{ih, pid}
	if p == nil || p.c != c {
		if len(c.peers) >= s.cfg.MaxSwarmsPerSocket {
			return fmt.Errorf("%w (max %d)", ErrTooManySwarms, s.cfg.MaxSwarmsPerSocket)
		}
	}
	if p == nil {
		if sw != nil && len(sw.peers) >= s.cfg.MaxPeersPerSwarm {
			return fmt.Errorf("%w (max %d peers)", ErrSwarmFull, s.cfg.MaxPeersPerSwarm)
		}
		if sw == nil {
			sw = &swarm{peers: make(map[ID]*peer)}
			s.swarms[ih] = sw
		}
		p = &peer{id: pid, c: c, seeder: seeder, left: -1}
		sw.add(p)
		c.bind(b)
	} else if p.c != c {
		// A re-announce from a new socket moves the peer: offers and answers
		// now go there, and the old socket can no longer answer as it.
		p.c.unbind(b)
		p.c = c
		c.bind(b)
	}
	sw.setSeeder(p, seeder)
	if ev == eventCompleted && !p.completed {
		p.completed = true
		sw.downloaded++
	}
	p.seen = now
	return nil
}

func (s *Server) reply(c *conn, ih ID, complete, incomplete int) {
	c.reply(announceReplyJSON(ih, s.intervalSeconds(), complete, incomplete))
}

// parseOffers validates the offers used (the first MaxOffersPerAnnounce) and
// ignores the rest, as aquatic_ws does.
func (s *Server) parseOffers(raw json.RawMessage) ([]wireOffer, error) {
	if isAbsent(raw) {
		return nil, nil
	}
	if raw[0] != '[' {
		return nil, fmt.Errorf("%w: offers is not an array", ErrBadMessage)
	}
	var list []json.RawMessage
	eachElement(raw, func(e []byte) bool {
		list = append(list, e)
		return len(list) < s.cfg.MaxOffersPerAnnounce
	})
	out := make([]wireOffer, 0, len(list))
	for i, e := range list {
		o, err := offerEntry(e)
		if err != nil {
			return nil, fmt.Errorf("%w: offers[%d] is not an object", ErrBadMessage, i)
		}
		idName, sdpName := offerFieldNames(i)
		id, err := idField(o.OfferID, idName)
		if err != nil {
			return nil, err
		}
		sdp, err := sdpField(o.Offer, sdpName, "offer")
		if err != nil {
			return nil, err
		}
		out = append(out, wireOffer{id: id, sdp: sdp})
	}
	return out, nil
}

// offerNames holds offerFieldNames for the first offers, so that a valid announce formats none.
var offerNames = func() (names [16][2]string) {
	for i := range names {
		names[i] = [2]string{fmt.Sprintf("offers[%d].offer_id", i), fmt.Sprintf("offers[%d].offer", i)}
	}
	return names
}()

// offerFieldNames names offer i's offer_id and offer in failure reasons.
func offerFieldNames(i int) (id, sdp string) {
	if i < len(offerNames) {
		return offerNames[i][0], offerNames[i][1]
	}
	return fmt.Sprintf("offers[%d].offer_id", i), fmt.Sprintf("offers[%d].offer", i)
}

// offerEntryFields are the members of one entry of an announce's offers.
var offerEntryFields = []string{"offer_id", "offer"}

type rawOfferEntry struct {
	OfferID json.RawMessage `json:"offer_id"`
	Offer   json.RawMessage `json:"offer"`
}

// offerEntry splits one entry of offers as json.Unmarshal would (null gives empty fields).
func offerEntry(e []byte) (rawOfferEntry, error) {
	var o rawOfferEntry
	if isAbsent(e) {
		return o, nil
	}
	if e[0] == '{' {
		fast := true
		eachMember(e, func(key, value []byte) {
			switch i, ok := fieldIndex(key, offerEntryFields); {
			case !ok:
				fast = false
			case i == 0:
				o.OfferID = value
			case i == 1:
				o.Offer = value
			}
		})
		if fast {
			return o, nil
		}
		o = rawOfferEntry{}
	}
	err := json.Unmarshal(e, &o)
	return o, err
}

// relayOffers sends each offer to a different random peer of the swarm on
// another socket and remembers where it went.
func (s *Server) relayOffers(c *conn, ih, from ID, offers []wireOffer, now time.Time) {
	if len(offers) == 0 {
		return
	}
	type delivery struct {
		to *conn
		o  wireOffer
	}
	var ds []delivery
	s.mu.Lock()
	if sw := s.swarms[ih]; sw != nil {
		// The peer may have left (or moved) while the lock was released.
		if p := sw.peers[from]; p != nil && p.c == c {
			for i, t := range pickTargets(sw, c, len(offers)) {
				s.rememberOffer(p, offers[i].id, t.id, now)
				ds = append(ds, delivery{t.c, offers[i]})
			}
		}
	}
	s.mu.Unlock()
	for _, d := range ds {
		if d.to.send(offerJSON(ih, from, d.o.id, d.o.sdp)) {
			s.offersRelayed.Add(1)
		}
	}
}

// answer relays an answer to the offerer, but only when the answering
// peer_id is bound to this socket and the offer was relayed to it.
func (s *Server) answer(c *conn, m *inMessage) error {
	ih, err := idField(m.InfoHash, "info_hash")
	if err != nil {
		return err
	}
	pid, err := idField(m.PeerID, "peer_id")
	if err != nil {
		return err
	}
	to, err := idField(m.ToPeerID, "to_peer_id")
	if err != nil {
		return err
	}
	oid, err := idField(m.OfferID, "offer_id")
	if err != nil {
		return err
	}
	sdp, err := sdpField(m.Answer, "answer", "answer")
	if err != nil {
		return err
	}

	now := time.Now()
	s.mu.Lock()
	sw := s.swarms[ih]
	var ap *peer
	if sw != nil {
		ap = sw.peers[pid]
	}
	if ap == nil || ap.c != c {
		s.mu.Unlock()
		return ErrNotAnnounced
	}
	ap.seen = now
	if s.local != nil && to == s.localID {
		lo := s.localOffers[localOfferKey{ih, oid}]
		if lo == nil || lo.to != pid {
			s.mu.Unlock()
			return ErrUnknownOffer
		}
		delete(s.localOffers, localOfferKey{ih, oid})
		lo.finish(offerResult{sdp: sdp.String()})
		s.mu.Unlock()
		s.answersRelayed.Add(1)
		return nil
	}
	op := sw.peers[to]
	if op == nil {
		s.mu.Unlock()
		return ErrUnknownOffer
	}
	o, ok := op.offers[oid]
	if !ok || o.to != pid || now.Sub(o.at) > s.cfg.OfferTimeout {
		s.mu.Unlock()
		return ErrUnknownOffer
	}
	delete(op.offers, oid) // one answer per offer
	target := op.c
	s.mu.Unlock()

	if target.send(answerJSON(ih, pid, to, oid, sdp)) {
		s.answersRelayed.Add(1)
	}
	return nil
}

func (s *Server) scrape(c *conn, m *inMessage) error {
	var hashes []ID
	all := isAbsent(m.InfoHash)
	if !all {
		var one string
		if err := json.Unmarshal(m.InfoHash, &one); err == nil {
			id, err := parseBinaryID(one)
			if err != nil {
				return fmt.Errorf("%w: info_hash: %w", ErrBadMessage, err)
			}
			hashes = []ID{id}
		} else {
			var list []json.RawMessage
			if err := json.Unmarshal(m.InfoHash, &list); err != nil {
				return fmt.Errorf("%w: info_hash is neither a string nor an array", ErrBadMessage)
			}
			if len(list) > s.cfg.MaxScrapeHashes {
				return fmt.Errorf("%w: %d, max %d", ErrTooManyHashes, len(list), s.cfg.MaxScrapeHashes)
			}
			for i, e := range list {
				id, err := idField(e, fmt.Sprintf("info_hash[%d]", i))
				if err != nil {
					return err
				}
				hashes = append(hashes, id)
			}
		}
	}
	s.scrapes.Add(1)
	r := scrapeReply{Action: actionScrape, Files: make(map[string]scrapeFile)}
	r.Flags.MinRequestInterval = minScrapeInterval
	s.mu.Lock()
	if all {
		for ih := range s.swarms {
			if len(hashes) == s.cfg.MaxScrapeHashes {
				break
			}
			hashes = append(hashes, ih)
		}
	}
	for _, ih := range hashes {
		sw := s.swarms[ih]
		f := scrapeFile{}
		f.Complete, f.Incomplete = s.counts(sw)
		if sw != nil {
			f.Downloaded = sw.downloaded
		}
		r.Files[ih.binary()] = f
	}
	s.mu.Unlock()
	c.reply(mustMarshal(r))
	return nil
}
