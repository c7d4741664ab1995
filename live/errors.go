package live

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors of the origin and relay (the window's refusals are in entry.go).
var (
	// ErrInvalidConfig is returned by the configs' Validate, and by NewOrigin, NewWindow,
	// NewRelay and Broadcast for an unusable config.
	ErrInvalidConfig = errors.New("live: invalid config")
	// ErrStreamLimit refuses a new stream while the origin holds OriginConfig.MaxStreams.
	ErrStreamLimit = errors.New("live: stream limit reached")
	// ErrStreamExists refuses to follow a stream the origin holds already.
	ErrStreamExists = errors.New("live: stream is here already")
	// ErrNotFollowed refuses relayed segments and ends for a stream the origin does not follow.
	ErrNotFollowed = errors.New("live: stream is not followed here")
)

// configErrors collects a config's problems, each wrapping ErrInvalidConfig and naming its field.
type configErrors []error

func (e *configErrors) add(field, format string, args ...any) {
	*e = append(*e, fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
}

func (e *configErrors) positive(field string, v int64) {
	if v <= 0 {
		e.add(field, "must be > 0, got %d", v)
	}
}

func (e *configErrors) duration(field string, d time.Duration) {
	if d <= 0 {
		e.add(field, "must be > 0, got %v", d)
	}
}

func (e configErrors) err() error { return errors.Join(e...) }
