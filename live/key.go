package live

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// GenerateKey makes a new broadcaster key from crypto/rand.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("live: generating an ed25519 key: %w", err)
	}
	return priv, nil
}

const pemType = "PRIVATE KEY"

// WriteKeyFile stores priv at path as a PKCS#8 PEM "PRIVATE KEY" readable by its owner only
// (mode 0600). It never overwrites: if path exists it fails with an error wrapping fs.ErrExist.
func WriteKeyFile(path string, priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("live: not an ed25519 private key (%d bytes)", len(priv))
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("live: encoding key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("live: key file %s already exists; refusing to overwrite it (a lost key is a lost stream id): %w", path, fs.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("live: creating key file: %w", err)
	}
	err = pem.Encode(f, &pem.Block{Type: pemType, Bytes: der})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("live: writing key file %s: %w", path, err)
	}
	return nil
}

// ReadKeyFile loads a key written by WriteKeyFile (or `openssl genpkey -algorithm ed25519`).
func ReadKeyFile(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("live: key file %s does not exist: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("live: reading key file: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("live: key file %s: no PEM block found", path)
	}
	if block.Type != pemType {
		return nil, fmt.Errorf("live: key file %s: PEM block is %q, want %q (PKCS#8)", path, block.Type, pemType)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("live: key file %s: bad PKCS#8 key: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("live: key file %s holds a %T, not an ed25519 key", path, k)
	}
	return priv, nil
}

// StreamID names a live stream: it is the broadcaster's ed25519 public key, so whoever holds the
// id can check the stream's signatures without asking anyone for a key (as PPSPP names a swarm).
type StreamID [ed25519.PublicKeySize]byte

// StreamIDLen is the length of a StreamID's text form.
const StreamIDLen = 52

// Lowercase RFC 4648 base32 without padding: URL- and path-safe, 52 characters for 32 bytes.
var streamIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// StreamIDOf is the stream id of a public key; the zero StreamID (refused everywhere) if pub is
// not 32 bytes.
func StreamIDOf(pub ed25519.PublicKey) StreamID {
	var id StreamID
	if len(pub) == len(id) {
		copy(id[:], pub)
	}
	return id
}

// StreamIDOfKey is the stream id a private key signs for.
func StreamIDOfKey(priv ed25519.PrivateKey) StreamID {
	return StreamIDOf(priv.Public().(ed25519.PublicKey))
}

// PublicKey is the key the id stands for.
func (id StreamID) PublicKey() ed25519.PublicKey { return ed25519.PublicKey(id[:]) }

// String is the id's text form: 52 characters of lowercase unpadded base32.
func (id StreamID) String() string { return streamIDEncoding.EncodeToString(id[:]) }

// IsZero reports whether id is unset.
func (id StreamID) IsZero() bool { return id == StreamID{} }

// MarshalText implements encoding.TextMarshaler (JSON uses the text form).
func (id StreamID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseStreamID's checks.
func (id *StreamID) UnmarshalText(b []byte) error {
	v, err := ParseStreamID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ParseStreamID reads an id's text form. It accepts only the canonical spelling (lowercase, no
// padding, zero trailing bits), so that one stream has exactly one id and one URL path.
func ParseStreamID(s string) (StreamID, error) {
	var id StreamID
	if len(s) != StreamIDLen {
		return id, fmt.Errorf("live: stream id %q: want %d characters, got %d", abbrev(s), StreamIDLen, len(s))
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '2' && r <= '7') }); i >= 0 {
		return id, fmt.Errorf("live: stream id %q: character %q at %d is not lowercase base32 (a-z, 2-7)", abbrev(s), s[i], i)
	}
	b, err := streamIDEncoding.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("live: stream id %q: not base32 of a 32-byte key", abbrev(s))
	}
	copy(id[:], b)
	if id.String() != s {
		return StreamID{}, fmt.Errorf("live: stream id %q: not canonical (its last character carries stray bits)", abbrev(s))
	}
	return id, nil
}

func abbrev(s string) string {
	if len(s) > 70 {
		return s[:64] + "…"
	}
	return s
}
