package signaling

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"unicode/utf8"
)

// ID is a 20-byte info_hash, peer_id or offer_id.
type ID [20]byte

// String returns the ID in lower-case hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID parses 40 hex digits.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("%w: %d hex digits, want 40", ErrBadID, len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%w: %v", ErrBadID, err)
	}
	return id, nil
}

// randomID returns a fresh offer_id.
func randomID() ID {
	var id ID
	_, _ = rand.Read(id[:]) // never fails (crypto/rand panics instead)
	return id
}

// binary returns the ID as a protocol "binary string": one code point
// U+0000–U+00FF per byte, which JSON then carries as UTF-8 or \u escapes.
func (id ID) binary() string {
	b := make([]byte, 0, 2*len(id))
	for _, v := range id {
		b = utf8.AppendRune(b, rune(v))
	}
	return string(b)
}

// parseBinaryID reverses ID.binary on a string decoded from JSON.
func parseBinaryID[T string | []byte](s T) (ID, error) {
	var id ID
	n := 0
	for _, r := range string(s) {
		if r > 0xFF {
			return id, fmt.Errorf("%w: character U+%04X is not a byte", ErrBadID, r)
		}
		if n == len(id) {
			return id, fmt.Errorf("%w: longer than 20 bytes", ErrBadID)
		}
		id[n] = byte(r)
		n++
	}
	if n != len(id) {
		return id, fmt.Errorf("%w: %d bytes, want 20", ErrBadID, n)
	}
	return id, nil
}
