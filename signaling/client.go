package signaling

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// ClientHandlers receive what the tracker sends a Client. Answer and Failure
// run on the Client's reader goroutine and must not block (nor call Close).
type ClientHandlers struct {
	// Offer answers an offer relayed to us; it runs on its own goroutine and
	// its ctx ends at clientOfferTimeout or Close. nil ignores offers.
	Offer func(ctx context.Context, o Offer) (answerSDP string, err error)
	// Answer receives the answer to one of our offers.
	Answer func(infoHash, from, offerID ID, sdp string)
	// Failure receives failure replies; optional.
	Failure func(infoHash ID, reason string)
}

// AnnounceParams is one announce of a Client.
type AnnounceParams struct {
	InfoHash             ID
	Event                string // "", started, stopped, completed, update
	Uploaded, Downloaded int64
	Left                 int64
	NumWant              int
	Offers               []ClientOffer
}

// ClientOffer is an offer sent with an announce.
type ClientOffer struct {
	OfferID ID
	SDP     string
}

const (
	// clientOfferTimeout bounds a ClientHandlers.Offer call, matching the server's default OfferTimeout.
	clientOfferTimeout = 120 * time.Second
	clientWriteTimeout = 10 * time.Second
	clientReadLimit    = 1 << 20
)

// Client speaks the tracker protocol from the peer's side with one peer_id.
// One reader goroutine; writes are serialised by a mutex.
type Client struct {
	ws     *websocket.Conn
	peerID ID
	h      ClientHandlers
	log    *slog.Logger

	ctx       context.Context // ends at Close or when the socket dies
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	wmu       sync.Mutex
	closeOnce sync.Once
}

// Dial connects to the tracker at url (ws:// or wss://). A nil log discards.
func Dial(ctx context.Context, url string, peerID ID, h ClientHandlers, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("signaling: dial %s: %w", url, err)
	}
	ws.SetReadLimit(clientReadLimit)
	cctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		ws:     ws,
		peerID: peerID,
		h:      h,
		log:    log.With("component", "signaling-client", "peer_id", peerID),
		ctx:    cctx,
		cancel: cancel,
	}
	c.wg.Add(1)
	go c.readLoop()
	return c, nil
}

// Announce sends one announce; it does not wait for the reply.
func (c *Client) Announce(ctx context.Context, p AnnounceParams) error {
	m := clientAnnounce{
		Action:     actionAnnounce,
		InfoHash:   p.InfoHash.binary(),
		PeerID:     c.peerID.binary(),
		Event:      p.Event,
		Uploaded:   p.Uploaded,
		Downloaded: p.Downloaded,
		Left:       p.Left,
		NumWant:    p.NumWant,
		Offers:     make([]clientOfferWire, len(p.Offers)),
	}
	for i, o := range p.Offers {
		m.Offers[i] = clientOfferWire{OfferID: o.OfferID.binary(), Offer: sdpMsg{Type: "offer", SDP: o.SDP}}
	}
	return c.write(ctx, mustMarshal(m))
}

func (c *Client) write(ctx context.Context, msg []byte) error {
	if c.ctx.Err() != nil {
		return ErrClosed
	}
	deadline := time.Now().Add(clientWriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(deadline)
	if err := c.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
		return fmt.Errorf("signaling: write: %w", err)
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

// dispatch handles one tracker message. The tracker is not trusted more than
// needed: anything malformed is logged and dropped.
func (c *Client) dispatch(data []byte) {
	var m inMessage
	if err := json.Unmarshal(data, &m); err != nil {
		c.log.Debug("bad tracker message", "err", err)
		return
	}
	ihStr, _, _ := stringField(m.InfoHash, "info_hash")
	ih, ihErr := parseBinaryID(ihStr)
	if reason, ok, _ := stringField(m.Failure, "failure reason"); ok {
		if c.h.Failure != nil {
			c.h.Failure(ih, reason)
		}
		return
	}
	if ihErr != nil {
		c.log.Debug("tracker message without valid info_hash", "err", ihErr)
		return
	}
	switch {
	case !isAbsent(m.Offer):
		if c.h.Offer == nil {
			return
		}
		from, err := idField(m.PeerID, "peer_id")
		if err != nil {
			c.log.Debug("bad offer", "err", err)
			return
		}
		oid, err := idField(m.OfferID, "offer_id")
		if err != nil {
			c.log.Debug("bad offer", "err", err)
			return
		}
		sdp, err := sdpField(m.Offer, "offer", "offer")
		if err != nil {
			c.log.Debug("bad offer", "err", err)
			return
		}
		c.wg.Add(1)
		go c.answerOffer(Offer{InfoHash: ih, PeerID: from, OfferID: oid, SDP: sdp})
	case !isAbsent(m.Answer):
		from, err := idField(m.PeerID, "peer_id")
		if err != nil {
			c.log.Debug("bad answer", "err", err)
			return
		}
		oid, err := idField(m.OfferID, "offer_id")
		if err != nil {
			c.log.Debug("bad answer", "err", err)
			return
		}
		sdp, err := sdpField(m.Answer, "answer", "answer")
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

func (c *Client) answerOffer(o Offer) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.ctx, clientOfferTimeout)
	defer cancel()
	sdp, err := c.h.Offer(ctx, o)
	if err != nil {
		c.log.Debug("offer not answered", "info_hash", o.InfoHash, "from", o.PeerID, "err", err)
		return
	}
	msg := mustMarshal(answerMsg{
		Action:   actionAnnounce,
		InfoHash: o.InfoHash.binary(),
		PeerID:   c.peerID.binary(),
		ToPeerID: o.PeerID.binary(),
		OfferID:  o.OfferID.binary(),
		Answer:   sdpMsg{Type: "answer", SDP: sdp},
	})
	if err := c.write(ctx, msg); err != nil {
		c.log.Debug("answer not sent", "err", err)
	}
}
