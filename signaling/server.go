package signaling

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// Server is the websocket tracker. It is an http.Handler, so it mounts on any
// path of any router.
//
// All swarm state sits behind one mutex: every operation on it is a few map
// lookups and no I/O happens under it (sends only enqueue), which keeps the
// code simpler than a hub goroutine and fast enough for the gateway's scale.
type Server struct {
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader

	ctx       context.Context // cancelled by Close; parent of LocalPeer.HandleOffer contexts
	cancel    context.CancelFunc
	wg        sync.WaitGroup // socket readers and writers, janitor, pinger, local offer handlers
	closeOnce sync.Once

	mu     sync.Mutex
	closed bool
	conns  map[uint64]*conn // this node's sockets, by id
	// nextConn is the last socket id given. It starts at random: another node's tracker keeps
	// this node's sockets by id, and ids that start over after a quick restart would name sockets
	// it still remembers.
	nextConn    uint64
	remotes     map[remoteKey]*conn // sockets of other nodes that sent messages here (Bus)
	perIP       map[string]int      // open sockets by client IP, for MaxSocketsPerIP
	swarms      map[ID]*swarm
	local       LocalPeer
	localID     ID
	localOffers map[localOfferKey]*localOffer

	announces, scrapes, offersRelayed, answersRelayed, failures atomic.Uint64
	socketsRefused, offersDropped, infoHashesRefused            atomic.Uint64
	forwarded, replayed                                         atomic.Uint64
}

// Stats is a snapshot of the server's size and counters.
type Stats struct {
	Sockets, Swarms, Peers                                      int
	Announces, Scrapes, OffersRelayed, AnswersRelayed, Failures uint64
	// SocketsRefused counts upgrades refused by MaxSocketsPerIP, OffersDropped offers over
	// OffersPerSecond, InfoHashesRefused announces AllowInfoHash turned down.
	SocketsRefused, OffersDropped, InfoHashesRefused uint64
	// Forwarded counts client messages handed to another node's tracker (Bus); RemoteSockets
	// is the number of other nodes' sockets that have peers or messages here.
	Forwarded     uint64
	RemoteSockets int
	// Replayed counts announces sent again to a swarm's new owner (OwnersChanged).
	Replayed uint64
}

// New validates cfg and starts the janitor that expires peers and offers.
// A nil log discards.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:         cfg,
		log:         log.With("component", "signaling"),
		ctx:         ctx,
		cancel:      cancel,
		conns:       make(map[uint64]*conn),
		remotes:     make(map[remoteKey]*conn),
		perIP:       make(map[string]int),
		swarms:      make(map[ID]*swarm),
		localOffers: make(map[localOfferKey]*localOffer),
	}
	first := randomID()
	s.nextConn = binary.BigEndian.Uint64(first[:8]) >> 1 // room for 2^63 sockets before wrapping
	checkOrigin := cfg.CheckOrigin
	if checkOrigin == nil {
		// Browsers on any page may use a public tracker; gorilla's default would demand same origin.
		checkOrigin = func(*http.Request) bool { return true }
	}
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		// A socket holds a small read buffer of its own (a message larger than it is read
		// straight into a shared buffer, see readLoop) and borrows a write buffer only while it
		// writes a message: most sockets are idle most of the time.
		ReadBufferSize:  readBufferSize,
		WriteBufferSize: writeBufferSize,
		WriteBufferPool: &writeBufs,
		CheckOrigin:     checkOrigin,
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			writeHTTPError(w, status, reason.Error())
		},
	}
	s.wg.Add(2)
	go s.janitor()
	go s.pinger()
	return s, nil
}

// Socket buffer sizes: a read buffer below an announce's size costs a second read call for it;
// one of 1 KiB holds an announce without offers, or an answer.
const (
	readBufferSize  = 1 << 10
	writeBufferSize = 4 << 10
)

// writeBufs is shared by every Server: a buffer is only held during one write.
var writeBufs sync.Pool

func writeHTTPError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// ServeHTTP upgrades any request to a tracker websocket. A request that is
// not a websocket upgrade gets 400 with a JSON error body.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		writeHTTPError(w, http.StatusBadRequest, "websocket tracker: expected a websocket upgrade")
		return
	}
	ip := s.clientIP(r)
	s.mu.Lock()
	closed := s.closed
	full := s.cfg.MaxSocketsPerIP > 0 && s.perIP[ip]+s.socketsElsewhere(ip) >= s.cfg.MaxSocketsPerIP
	if !closed && !full {
		s.perIP[ip]++ // held from here; released by dropConn, or below if the upgrade fails
	}
	s.mu.Unlock()
	if closed {
		writeHTTPError(w, http.StatusServiceUnavailable, "websocket tracker: shutting down")
		return
	}
	if full {
		// Refused before the upgrade: it costs no socket, and a webtorrent client treats it as a
		// socket error and retries later with its reconnect backoff.
		s.socketsRefused.Add(1)
		s.log.Debug("too many sockets from one IP", "ip", ip, "max", s.cfg.MaxSocketsPerIP)
		w.Header().Set("Retry-After", "60")
		writeHTTPError(w, http.StatusTooManyRequests,
			fmt.Sprintf("websocket tracker: too many connections from your address (max %d)", s.cfg.MaxSocketsPerIP))
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("upgrade failed", "remote", r.RemoteAddr, "err", err)
		s.mu.Lock()
		s.releaseIP(ip)
		s.mu.Unlock()
		return
	}
	c := &conn{s: s, ws: ws, remote: r.RemoteAddr, ip: ip}
	if s.cfg.OffersPerSecond > 0 {
		c.offers = rate.NewLimiter(rate.Limit(s.cfg.OffersPerSecond), s.cfg.offerBurst())
	}
	s.mu.Lock()
	if s.closed {
		s.releaseIP(ip)
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	s.nextConn++
	c.id = s.nextConn
	s.conns[c.id] = c
	// Added under mu with closed false, so Close's Wait cannot have started.
	s.wg.Add(1)
	s.mu.Unlock()
	go c.readLoop()
}

// clientIP names the client of r for the per-IP socket limit.
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.ClientIP != nil {
		return s.cfg.ClientIP(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// socketsElsewhere is the sockets ip holds on the cluster's other nodes, as far as the bus knows.
func (s *Server) socketsElsewhere(ip string) int {
	if sc, ok := s.cfg.Bus.(SocketCounter); ok {
		return sc.SocketsElsewhere(ip)
	}
	return 0
}

// releaseIP gives back one socket of ip. Caller holds s.mu.
func (s *Server) releaseIP(ip string) {
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

// Close closes every socket, stops the janitor and waits for all goroutines
// the server started. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		for _, c := range s.conns {
			c.kill("server closing")
		}
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
	})
	return nil
}

// Stats returns current sizes and counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{Sockets: len(s.conns), Swarms: len(s.swarms), RemoteSockets: len(s.remotes)}
	for _, sw := range s.swarms {
		st.Peers += len(sw.peers)
	}
	s.mu.Unlock()
	st.Announces = s.announces.Load()
	st.Scrapes = s.scrapes.Load()
	st.OffersRelayed = s.offersRelayed.Load()
	st.AnswersRelayed = s.answersRelayed.Load()
	st.Failures = s.failures.Load()
	st.SocketsRefused = s.socketsRefused.Load()
	st.OffersDropped = s.offersDropped.Load()
	st.InfoHashesRefused = s.infoHashesRefused.Load()
	st.Forwarded = s.forwarded.Load()
	st.Replayed = s.replayed.Load()
	return st
}

// SwarmStats describes one swarm's socket peers as they last announced.
type SwarmStats struct {
	Peers   int // socket peers (browsers and other WebRTC peers)
	Seeders int // of which have the whole torrent
	// Uploaded and Downloaded add up what the peers reported: Uploaded is what they shared with
	// each other and with anyone else, not what the local peer sent them.
	Uploaded, Downloaded int64
}

// SwarmStats returns the swarm's stats; the zero value for an unknown swarm.
func (s *Server) SwarmStats(infoHash ID) SwarmStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	sw := s.swarms[infoHash]
	if sw == nil {
		return SwarmStats{}
	}
	st := SwarmStats{Peers: len(sw.peers), Seeders: sw.seeders}
	for _, p := range sw.peers {
		st.Uploaded += p.uploaded
		st.Downloaded += p.downloaded
	}
	return st
}

// janitor expires silent peers and unanswered offers.
func (s *Server) janitor() {
	defer s.wg.Done()
	period := min(s.cfg.PeerTimeout, s.cfg.OfferTimeout) / 4
	period = max(period, 10*time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.expire(now)
		}
	}
}

func (s *Server) expire(now time.Time) {
	peerDeadline := now.Add(-s.cfg.PeerTimeout)
	offerDeadline := now.Add(-s.cfg.OfferTimeout)
	expired := 0
	s.mu.Lock()
	defer s.mu.Unlock()
	for ih, sw := range s.swarms {
		// Iterating backwards keeps swap-removal from skipping a peer.
		for i := len(sw.list) - 1; i >= 0; i-- {
			p := sw.list[i]
			if p.seen.Before(peerDeadline) {
				s.removePeer(ih, sw, p)
				expired++
				continue
			}
			for oid, o := range p.offers {
				if o.at.Before(offerDeadline) {
					delete(p.offers, oid)
				}
			}
		}
		s.dropIfEmpty(ih, sw)
	}
	s.expireRemotes(peerDeadline)
	if expired > 0 {
		s.log.Debug("peers expired", "count", expired)
	}
}

// failure sends a failure reply. Clients close the socket on any action other
// than announce or scrape, so the reply uses one of those.
func (c *conn) failure(action, infoHash string, err error) {
	if action != actionScrape {
		action = actionAnnounce
	}
	c.s.failures.Add(1)
	c.s.log.Debug("failure", "remote", c.remote, "action", action, "err", err)
	c.reply(mustMarshal(failureMsg{Action: action, InfoHash: infoHash, Reason: err.Error()}))
}

func (s *Server) intervalSeconds() int {
	return int((s.cfg.AnnounceInterval + time.Second - 1) / time.Second)
}
