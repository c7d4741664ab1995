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
	// ErrClosed means the gateway is shutting down.
	ErrClosed = errors.New("gateway closed")
)
