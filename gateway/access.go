package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/labstack/echo/v4"

	"github.com/swarmgate/swarmgate/signaling"
)

// Limits whose refusals are counted (swarmgate_limit_refusals_total{limit=...}).
const (
	limitAllowAdd         = "allow_add"
	limitAllowInfoHash    = "allow_infohash"
	limitMaxTorrents      = "max_torrents"
	limitWebRTCPeers      = "webrtc_peers"
	limitWebRTCPerTorrent = "webrtc_peers_per_torrent"
	limitWSPerIP          = "ws_per_ip"
	limitOffersPerSec     = "offers_per_sec"
	limitTrackerInfoHash  = "tracker_infohash"
)

// refusals counts the gateway's own refusals; the tracker's come from its Stats.
type refusals struct {
	allowAdd, allowInfoHash, maxTorrents, webrtcPeers, webrtcPerTorrent atomic.Uint64
}

// access is what the gateway checks before serving an operator-only request or a new peer.
type access struct {
	tokenHash [sha256.Size]byte // of AdminToken; zero without one
	hasToken  bool
	allowAdd  string
	allowed   map[metainfo.Hash]struct{} // nil: any infohash
	proxies   []netip.Prefix
}

func newAccess(cfg Config) (access, error) {
	a := access{hasToken: cfg.AdminToken != ""}
	if a.hasToken {
		a.tokenHash = sha256.Sum256([]byte(cfg.AdminToken))
	}
	var err error
	if a.allowAdd, err = cfg.allowAdd(); err != nil {
		return a, err
	}
	if a.proxies, err = cfg.trustedProxies(); err != nil {
		return a, err
	}
	if len(cfg.AllowInfoHashes) > 0 {
		a.allowed = make(map[metainfo.Hash]struct{}, len(cfg.AllowInfoHashes))
		for _, s := range cfg.AllowInfoHashes {
			ih, err := parseInfoHash(s)
			if err != nil {
				return a, &FieldError{Field: "AllowInfoHashes", Err: fmt.Errorf("%q: %w", s, err)}
			}
			a.allowed[ih] = struct{}{}
		}
	}
	return a, nil
}

// tokenOK compares the request's bearer token with AdminToken in constant time (both hashed
// first, so neither length leaks either).
func (a *access) tokenOK(r *http.Request) bool {
	if !a.hasToken {
		return true
	}
	scheme, tok, ok := strings.Cut(r.Header.Get(echo.HeaderAuthorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	h := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(h[:], a.tokenHash[:]) == 1
}

// requireToken answers 401 unless the request carries the admin token (or none is configured).
func (a *access) requireToken(c echo.Context) error {
	if a.tokenOK(c.Request()) {
		return nil
	}
	if c.Request().Header.Get(echo.HeaderAuthorization) == "" {
		return fmt.Errorf("%w: this needs the admin token as \"Authorization: Bearer <token>\"", ErrUnauthorized)
	}
	return fmt.Errorf("%w: wrong admin token", ErrUnauthorized)
}

// mayAdd says whether this request may add torrents at all.
func (g *Gateway) mayAdd(c echo.Context) error {
	switch g.access.allowAdd {
	case allowAddNone:
		g.refused.allowAdd.Add(1)
		return fmt.Errorf("%w: this gateway does not take new torrents over the API (allow-add none); it serves the ones its operator seeds", ErrForbidden)
	case allowAddToken:
		return g.access.requireToken(c)
	}
	return nil
}

// infoHashAllowed says whether the allowlist (if any) lets ih in.
func (a *access) infoHashAllowed(ih metainfo.Hash) bool {
	if a.allowed == nil {
		return true
	}
	_, ok := a.allowed[ih]
	return ok
}

// trackerAllows is the tracker's AllowInfoHash: the allowlist plus the gateway's own torrents
// (--demo, seeded ones) and the browser swarms of the live streams it holds (their info_hash is
// p2p-media-loader's, derived from the stream id: live_swarm.go). Without an allowlist the
// tracker serves any swarm, browser-only ones too.
func (g *Gateway) trackerAllows() func(signaling.ID) bool {
	if g.access.allowed == nil {
		return nil
	}
	var swarms liveSwarms
	return func(id signaling.ID) bool {
		ih := metainfo.Hash(id)
		if g.access.infoHashAllowed(ih) {
			return true
		}
		if _, ok := g.torrents.Get(ih); ok {
			return true
		}
		return g.live != nil && swarms.holds(g.live.Streams(), id)
	}
}

// clientIP is the address per-IP limits count: the TCP peer, or, when that is a trusted proxy,
// the right-most X-Forwarded-For entry that is not a trusted proxy itself.
func (a *access) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !a.trusted(peer) {
		return host
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // garbage: stop at the last address a trusted proxy vouched for
		}
		client = hop.Unmap()
		if !a.trusted(client) {
			break
		}
	}
	return client.String()
}

func (a *access) trusted(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range a.proxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
