package gateway

import "errors"

// Sentinel errors; the HTTP layer maps them to status codes.
var (
	// ErrBadInput means the request itself is wrong (400).
	ErrBadInput = errors.New("bad input")
	// ErrNotFound means no such torrent, file or path (404).
	ErrNotFound = errors.New("not found")
	// ErrMetadataPending means the torrent's metadata has not arrived yet (503, retry).
	ErrMetadataPending = errors.New("metadata not yet available")
	// ErrConflict means the request cannot be done in the torrent's current state (409).
	ErrConflict = errors.New("conflict")
	// ErrUnauthorized means the request needs the admin token (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden means the gateway's policy refuses the request whoever asks (403).
	ErrForbidden = errors.New("forbidden")
	// ErrLimit means a configured limit is reached; retry later (503 with Retry-After).
	ErrLimit = errors.New("limit reached")
	// ErrUnavailable means the torrent's data could not be read before anything was sent (503,
	// retry): a storage error, or the download stopped.
	ErrUnavailable = errors.New("data unavailable")
	// ErrClosed means the gateway is shutting down.
	ErrClosed = errors.New("gateway closed")
)

// badInput marks err as the request's fault (it matches ErrBadInput) and keeps its words: the
// registry's checks of a torrent say what is wrong with it, and an uploaded one is the request.
type badInput struct{ error }

func (b badInput) Is(target error) bool { return target == ErrBadInput }
func (b badInput) Unwrap() error        { return b.error }
