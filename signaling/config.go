package signaling

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"
)

// Config holds every knob of the Server. Start from DefaultConfig.
type Config struct {
	AnnounceInterval time.Duration // sent to clients as interval, in whole seconds rounded up
	PingInterval     time.Duration // websocket ping period; a socket silent for 2×PingInterval is dropped
	PeerTimeout      time.Duration // a peer without announce for this long leaves its swarm
	// OfferTimeout is how long a relayed offer may be answered; it also bounds
	// LocalPeer.HandleOffer and SendOffer waits.
	OfferTimeout         time.Duration
	MaxMessageBytes      int64 // larger frames close the socket
	MaxOffersPerAnnounce int   // further offers in one announce are ignored
	// MaxSwarmsPerSocket bounds the (info_hash, peer_id) pairs one socket may
	// hold; a browser has one peer_id, so this is its number of swarms.
	MaxSwarmsPerSocket int
	MaxPeersPerSwarm   int
	MaxScrapeHashes    int // also caps a scrape of all swarms
	SendQueue          int // messages queued per socket before it counts as slow and is closed
	// MaxSocketsPerIP bounds the open websockets of one client IP; further upgrades are refused
	// with 429 and a JSON error before the upgrade. 0 means no limit.
	MaxSocketsPerIP int
	// OffersPerSecond is the token-bucket rate of offers one socket may send (burst: the larger of
	// one second's worth and MaxOffersPerAnnounce). Offers over it are dropped and answered with a
	// failure reason; the announce itself and the socket stay. 0 means no limit.
	OffersPerSecond float64
	// CheckOrigin vets the Origin of a websocket upgrade; nil allows any.
	CheckOrigin func(r *http.Request) bool
	// ClientIP names the client of an upgrade request for MaxSocketsPerIP; nil uses the host of
	// r.RemoteAddr. Behind a reverse proxy the caller decides which forwarding header to trust.
	ClientIP func(r *http.Request) string
	// AllowInfoHash says whether announces for infoHash are served; others get a failure reason.
	// nil serves any. Called without server locks held; must be fast.
	AllowInfoHash func(infoHash ID) bool
	// Bus links this tracker with other nodes' (see Bus); nil for a gateway on its own.
	Bus Bus
}

// DefaultConfig returns the defaults (aquatic_ws's limits, webtorrent's timing).
func DefaultConfig() Config {
	return Config{
		AnnounceInterval:     120 * time.Second,
		PingInterval:         30 * time.Second,
		PeerTimeout:          180 * time.Second,
		OfferTimeout:         120 * time.Second,
		MaxMessageBytes:      64 << 10,
		MaxOffersPerAnnounce: 10,
		MaxSwarmsPerSocket:   128,
		MaxPeersPerSwarm:     5000,
		MaxScrapeHashes:      255,
		SendQueue:            64,
	}
}

// Validate reports every unusable field, each with the reason.
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}
	positive := func(field string, d time.Duration) {
		if d <= 0 {
			bad(field, "must be > 0, got %v", d)
		}
	}
	positive("AnnounceInterval", c.AnnounceInterval)
	positive("PingInterval", c.PingInterval)
	positive("PeerTimeout", c.PeerTimeout)
	positive("OfferTimeout", c.OfferTimeout)
	if c.PeerTimeout > 0 && c.PeerTimeout < c.AnnounceInterval {
		bad("PeerTimeout", "(%v) must be >= AnnounceInterval (%v), or peers expire between their announces", c.PeerTimeout, c.AnnounceInterval)
	}
	if c.MaxMessageBytes < 1024 {
		bad("MaxMessageBytes", "must be >= 1024 (an SDP alone needs more), got %d", c.MaxMessageBytes)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"MaxOffersPerAnnounce", c.MaxOffersPerAnnounce},
		{"MaxSwarmsPerSocket", c.MaxSwarmsPerSocket},
		{"MaxPeersPerSwarm", c.MaxPeersPerSwarm},
		{"MaxScrapeHashes", c.MaxScrapeHashes},
		{"SendQueue", c.SendQueue},
	} {
		if f.v <= 0 {
			bad(f.name, "must be > 0, got %d", f.v)
		}
	}
	if c.MaxSocketsPerIP < 0 {
		bad("MaxSocketsPerIP", "must be >= 0 (0 = no limit), got %d", c.MaxSocketsPerIP)
	}
	if c.OffersPerSecond < 0 || math.IsNaN(c.OffersPerSecond) || math.IsInf(c.OffersPerSecond, 0) {
		bad("OffersPerSecond", "must be >= 0 (0 = no limit), got %v", c.OffersPerSecond)
	}
	return errors.Join(errs...)
}

// offerBurst is the bucket size of the per-socket offer limiter: one full announce always fits.
func (c Config) offerBurst() int {
	return max(int(math.Ceil(c.OffersPerSecond)), c.MaxOffersPerAnnounce)
}
