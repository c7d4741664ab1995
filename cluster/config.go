package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strings"
	"time"
)

// ErrInvalidConfig is what every problem Config.Validate reports matches with errors.Is.
var ErrInvalidConfig = errors.New("invalid cluster config")

// Config says how a node joins its cluster. Either NATSURL (an existing NATS) or Listen (an
// embedded NATS server) must be set; Enabled reports whether either is.
type Config struct {
	// Name names this node to the others: letters, digits, '-' and '_' (it is part of NATS
	// subjects). Two live nodes must not share one. Default: the host name.
	Name string
	// NATSURL is an existing NATS to join (nats://user:password@host:4222, comma-separated for
	// several); CredsFile, if set, holds its credentials.
	NATSURL   string
	CredsFile string
	// Listen is the host:port where the embedded NATS server takes the routes of the other nodes.
	Listen string
	// Routes are the other nodes' Listen addresses (host:port or nats-route://host:port); this
	// node's own may be among them, so every node can be given the same list.
	Routes []string
	// Secret authenticates the embedded servers' routes to each other. Required with Listen.
	Secret string
	// HTTPURL is this node's HTTP base URL and BTAddr its BitTorrent address, as the other nodes
	// reach them.
	HTTPURL, BTAddr string
	// Heartbeat is how often a node says it is alive; Timeout how long a silent one is still
	// counted as a member.
	Heartbeat, Timeout time.Duration
	// Log receives the node's events; nil discards.
	Log *slog.Logger
}

// DefaultConfig returns the timings; the rest is for the caller.
func DefaultConfig() Config {
	return Config{Heartbeat: time.Second, Timeout: 3 * time.Second}
}

// Enabled reports whether the config asks for a cluster at all.
func (c Config) Enabled() bool { return c.NATSURL != "" || c.Listen != "" }

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// DefaultName makes a node name of the host name.
func DefaultName() string {
	h, err := os.Hostname()
	if err != nil {
		return "swarmgate"
	}
	h = regexp.MustCompile(`[^A-Za-z0-9_-]+`).ReplaceAllString(h, "-")
	if h = strings.Trim(h, "-"); h == "" {
		return "swarmgate"
	}
	return h[:min(len(h), 64)]
}

// FieldError is one problem Validate found, naming the Config field; it matches ErrInvalidConfig.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string        { return e.Field + " " + e.Msg }
func (e *FieldError) Is(target error) bool { return target == ErrInvalidConfig }

// Validate reports every field that cannot work, each a *FieldError.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if !validName.MatchString(c.Name) {
		bad("Name", "%q: use 1 to 64 letters, digits, '-' or '_'", c.Name)
	}
	switch {
	case c.NATSURL != "" && c.Listen != "":
		bad("Listen", "%q: join an existing NATS or embed one, not both", c.Listen)
	case c.NATSURL == "" && c.Listen == "":
		bad("Listen", "is empty: give an existing NATS or an address for an embedded one")
	case c.Listen != "":
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			bad("Listen", "%q: %v", c.Listen, err)
		}
		if c.Secret == "" {
			bad("Secret", "is required with an embedded NATS, so that no unauthenticated node joins")
		}
		for _, r := range c.Routes {
			if _, err := routeURL(r, "", ""); err != nil {
				bad("Routes", "%q: %v", r, err)
			}
		}
	case len(c.Routes) > 0:
		bad("Routes", "belong to an embedded NATS; an existing NATS has its own routes")
	case c.Secret != "":
		bad("Secret", "belongs to an embedded NATS; put an existing NATS's credentials in its URL or a creds file")
	}
	if c.Heartbeat <= 0 {
		bad("Heartbeat", "%v: must be positive", c.Heartbeat)
	}
	if c.Timeout < 2*c.Heartbeat {
		bad("Timeout", "%v: must be at least two heartbeats (%v)", c.Timeout, 2*c.Heartbeat)
	}
	return errors.Join(errs...)
}
