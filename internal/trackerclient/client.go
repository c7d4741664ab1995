// Package trackerclient is the peer's side of the WebTorrent websocket tracker protocol, for
// native (Go) WebRTC peers in tests and benchmarks: announce with offers, answer the offers the
// tracker relays, receive the answers to ours.
//
// It is a second implementation of the protocol, independent of the server in package signaling:
// its own JSON wire types and its own encoding of IDs as binary strings, written from the
// protocol (bittorrent-tracker's client), so that a test through it checks the server against
// the protocol rather than against itself. It borrows only signaling's value types (ID, Offer).
// Production code does not use it: the gateway takes part in swarms as signaling's LocalPeer.
package trackerclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/swarmgate/swarmgate/signaling"
)

// ErrClosed is returned by Announce on a Client that was closed or whose socket ended.
var ErrClosed = errors.New("trackerclient: closed")

// Handlers receive what the tracker sends a Client. Answer and Failure run on the Client's
// reader goroutine and must not block (nor call Close).
type Handlers struct {
	// Offer answers an offer relayed to us; it runs on its own goroutine and its ctx ends at
	// offerTimeout or Close. nil ignores offers.
	Offer func(ctx context.Context, o signaling.Offer) (answerSDP string, err error)
	// Answer receives the answer to one of our offers.
	Answer func(infoHash, from, offerID signaling.ID, sdp string)
	// Failure receives failure replies; optional.
	Failure func(infoHash signaling.ID, reason string)
}

// AnnounceParams is one announce of a Client.
type AnnounceParams struct {
	InfoHash             signaling.ID
	Event                string // "", started, stopped, completed, update
	Uploaded, Downloaded int64
	Left                 int64
	NumWant              int
	Offers               []Offer
}

// Offer is an offer we send with an announce.
type Offer struct {
	OfferID signaling.ID
	SDP     string
}

const (
	// offerTimeout bounds a Handlers.Offer call, matching the server's default OfferTimeout.
	offerTimeout = 120 * time.Second
	writeTimeout = 10 * time.Second
	readLimit    = 1 << 20
)

// Client speaks the tracker protocol from the peer's side with one peer_id.
// One reader goroutine; writes are serialised by a mutex.
type Client struct {
	ws     *websocket.Conn
	peerID signaling.ID
	h      Handlers
	log    *slog.Logger

	ctx       context.Context // ends at Close or when the socket dies
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	wmu       sync.Mutex
	closeOnce sync.Once
}

// Dial connects to the tracker at url (ws:// or wss://). A nil log discards.
func Dial(ctx context.Context, url string, peerID signaling.ID, h Handlers, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("trackerclient: dial %s: %w", url, err)
	}
	ws.SetReadLimit(readLimit)
	cctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		ws:     ws,
		peerID: peerID,
		h:      h,
		log:    log.With("component", "tracker-client", "peer_id", peerID),
		ctx:    cctx,
		cancel: cancel,
	}
	c.wg.Add(1)
	go c.readLoop()
	return c, nil
}

// Announce sends one announce; it does not wait for the reply.
func (c *Client) Announce(ctx context.Context, p AnnounceParams) error {
	m := announceMsg{
		Action:     "announce",
		InfoHash:   binaryString(p.InfoHash),
		PeerID:     binaryString(c.peerID),
		Event:      p.Event,
		Uploaded:   p.Uploaded,
		Downloaded: p.Downloaded,
		Left:       p.Left,
		NumWant:    p.NumWant,
		Offers:     make([]offerEntry, len(p.Offers)),
	}
	for i, o := range p.Offers {
		m.Offers[i] = offerEntry{OfferID: binaryString(o.OfferID), Offer: sdpMsg{Type: "offer", SDP: o.SDP}}
	}
	return c.write(ctx, m)
}

func (c *Client) write(ctx context.Context, v any) error {
	if c.ctx.Err() != nil {
		return ErrClosed
	}
	msg, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("trackerclient: encode: %w", err)
	}
	deadline := time.Now().Add(writeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(deadline)
	if err := c.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
		return fmt.Errorf("trackerclient: write: %w", err)
	}
	return nil
}

// Close closes the socket and waits for the reader and any Offer handlers.
// It is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		// WriteControl may run beside a pending write, so no wmu here.
		_ = c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		_ = c.ws.Close()
		c.wg.Wait()
	})
	return nil
}

func (c *Client) readLoop() {
	defer c.wg.Done()
	defer c.cancel()
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			if c.ctx.Err() == nil {
				c.log.Debug("tracker socket ended", "err", err)
			}
			return
		}
		c.dispatch(data)
	}
}

// dispatch handles one tracker message. The tracker is not trusted more than needed: anything
// malformed is logged and dropped.
func (c *Client) dispatch(data []byte) {
	var m inMsg
	if err := json.Unmarshal(data, &m); err != nil {
		c.log.Debug("bad tracker message", "err", err)
		return
	}
	ih, ihErr := parseBinaryString(m.InfoHash)
	if m.Failure != nil {
		if c.h.Failure != nil {
			c.h.Failure(ih, *m.Failure) // a zero info hash when the tracker sent none that parses
		}
		return
	}
	if ihErr != nil {
		c.log.Debug("tracker message without valid info_hash", "err", ihErr)
		return
	}
	switch {
	case m.Offer != nil:
		if c.h.Offer == nil {
			return
		}
		from, oid, sdp, err := m.relayed(m.Offer, "offer")
		if err != nil {
			c.log.Debug("bad offer", "err", err)
			return
		}
		c.wg.Add(1)
		go c.answerOffer(signaling.Offer{InfoHash: ih, PeerID: from, OfferID: oid, SDP: sdp})
	case m.Answer != nil:
		from, oid, sdp, err := m.relayed(m.Answer, "answer")
		if err != nil {
			c.log.Debug("bad answer", "err", err)
			return
		}
		if c.h.Answer != nil {
			c.h.Answer(ih, from, oid, sdp)
		}
	}
	// Anything else is an announce or scrape reply, which a Client does not need.
}

func (c *Client) answerOffer(o signaling.Offer) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.ctx, offerTimeout)
	defer cancel()
	sdp, err := c.h.Offer(ctx, o)
	if err != nil {
		c.log.Debug("offer not answered", "info_hash", o.InfoHash, "from", o.PeerID, "err", err)
		return
	}
	err = c.write(ctx, answerMsg{
		Action:   "announce",
		InfoHash: binaryString(o.InfoHash),
		PeerID:   binaryString(c.peerID),
		ToPeerID: binaryString(o.PeerID),
		OfferID:  binaryString(o.OfferID),
		Answer:   sdpMsg{Type: "answer", SDP: sdp},
	})
	if err != nil {
		c.log.Debug("answer not sent", "err", err)
	}
}

// Wire format, as bittorrent-tracker's websocket client sends and reads it.

type sdpMsg struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

type offerEntry struct {
	OfferID string `json:"offer_id"`
	Offer   sdpMsg `json:"offer"`
}

type announceMsg struct {
	Action     string       `json:"action"`
	InfoHash   string       `json:"info_hash"`
	PeerID     string       `json:"peer_id"`
	Event      string       `json:"event,omitempty"`
	Uploaded   int64        `json:"uploaded"`
	Downloaded int64        `json:"downloaded"`
	Left       int64        `json:"left"`
	NumWant    int          `json:"numwant"`
	Offers     []offerEntry `json:"offers"`
}

type answerMsg struct {
	Action   string `json:"action"`
	InfoHash string `json:"info_hash"`
	PeerID   string `json:"peer_id"`
	ToPeerID string `json:"to_peer_id"`
	OfferID  string `json:"offer_id"`
	Answer   sdpMsg `json:"answer"`
}

// inMsg is any message from the tracker; a field of the wrong JSON type drops the message.
type inMsg struct {
	InfoHash string  `json:"info_hash"`
	PeerID   string  `json:"peer_id"`
	OfferID  string  `json:"offer_id"`
	Offer    *sdpMsg `json:"offer"`
	Answer   *sdpMsg `json:"answer"`
	Failure  *string `json:"failure reason"`
}

// relayed reads the fields of a relayed offer or answer: the sender, the offer_id and a
// non-empty SDP of the expected type (an absent type is accepted, as browsers do).
func (m *inMsg) relayed(s *sdpMsg, wantType string) (from, offerID signaling.ID, sdp string, err error) {
	if from, err = parseBinaryString(m.PeerID); err != nil {
		return from, offerID, "", fmt.Errorf("peer_id: %w", err)
	}
	if offerID, err = parseBinaryString(m.OfferID); err != nil {
		return from, offerID, "", fmt.Errorf("offer_id: %w", err)
	}
	if s.Type != "" && s.Type != wantType {
		return from, offerID, "", fmt.Errorf("%s.type is %q", wantType, s.Type)
	}
	if s.SDP == "" {
		return from, offerID, "", fmt.Errorf("%s.sdp missing", wantType)
	}
	return from, offerID, s.SDP, nil
}

// binaryString is the protocol's form of a 20-byte ID: a JavaScript "binary string" with one
// code point U+0000–U+00FF per byte (JSON then carries it as UTF-8 or \u escapes).
func binaryString(id signaling.ID) string {
	r := make([]rune, len(id))
	for i, b := range id {
		r[i] = rune(b)
	}
	return string(r)
}

// parseBinaryString reverses binaryString.
func parseBinaryString(s string) (signaling.ID, error) {
	var id signaling.ID
	if n := utf8.RuneCountInString(s); n != len(id) {
		return id, fmt.Errorf("%d characters, want %d", n, len(id))
	}
	i := 0
	for _, r := range s {
		if r > 0xFF {
			return id, fmt.Errorf("character U+%04X is not a byte", r)
		}
		id[i] = byte(r)
		i++
	}
	return id, nil
}
