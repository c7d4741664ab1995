package segtorrent

import (
	"errors"
	"fmt"
	"time"

	"github.com/anacrolix/torrent"
)

// ErrInvalidConfig wraps every problem Config.Validate reports, and New's for an unusable Config.
var ErrInvalidConfig = errors.New("segtorrent: invalid config")

// Defaults (see DefaultConfig).
const (
	// DefaultKeep is about a minute of a stream at 2 s segments.
	DefaultKeep      = 30
	DefaultPeerRetry = time.Second
)

// Config sets up Torrents. Start from DefaultConfig.
type Config struct {
	// Client holds the segments' torrents, seeded and fetched. Required; the caller owns it.
	Client *torrent.Client
	// Keep is how many media segments per stream stay seeded, with the init segment heading the
	// oldest of them.
	Keep int
	// PeerRetry is how often a fetch offers its peers to anacrolix again: a peer that did not
	// have the segment a moment ago (a relay still fetching it) may have it now.
	PeerRetry time.Duration
}

// DefaultConfig returns the defaults (Client still to be set): 30 media segments kept per stream,
// peers offered again every second.
func DefaultConfig() Config {
	return Config{Keep: DefaultKeep, PeerRetry: DefaultPeerRetry}
}

// Validate reports every unusable field, each with the reason and wrapped in ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}
	if c.Client == nil {
		bad("Client", "must be set")
	}
	if c.Keep <= 0 {
		bad("Keep", "must be > 0, got %d", c.Keep)
	}
	if c.PeerRetry <= 0 {
		bad("PeerRetry", "must be > 0, got %v", c.PeerRetry)
	}
	return errors.Join(errs...)
}
