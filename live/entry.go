package live

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/anacrolix/torrent/metainfo"
)

// Kind tells an fMP4 initialization segment from a media segment.
type Kind uint8

const (
	// KindInit is an initialization segment (EXT-X-MAP). It heads the media segments from its own
	// Seq on: an init at seq N is accepted before the media segment N, and has no duration.
	KindInit Kind = 1
	// KindMedia is a media segment (EXTINF).
	KindMedia Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindInit:
		return "init"
	case KindMedia:
		return "media"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func (k Kind) valid() bool { return k == KindInit || k == KindMedia }

// MarshalText implements encoding.TextMarshaler: "init" or "media".
func (k Kind) MarshalText() ([]byte, error) {
	if !k.valid() {
		return nil, fmt.Errorf("live: unknown segment kind %d", uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "init":
		*k = KindInit
	case "media":
		*k = KindMedia
	default:
		return fmt.Errorf("live: segment kind %q: want \"init\" or \"media\"", b)
	}
	return nil
}

// Entry describes one segment of a stream. It is what the broadcaster signs.
type Entry struct {
	Stream StreamID
	// Seq numbers media segments 0, 1, 2, ... (gaps mean dropped segments). An init segment
	// takes the Seq of the first media segment it heads.
	Seq  uint64
	Kind Kind
	// TimeMS is the wall-clock capture time of the segment's first frame (EXT-X-PROGRAM-DATE-TIME),
	// in milliseconds since the Unix epoch, UTC. For an init segment, when it was made.
	TimeMS int64
	// DurationUS is the media duration in microseconds (EXTINF); 0 for an init segment.
	DurationUS uint32
	// Size is the segment's length in bytes (never 0).
	Size     uint64
	SHA256   [sha256.Size]byte
	InfoHash metainfo.Hash // of the segment's single-file torrent, see SegmentInfo
}

// Start is TimeMS as a time.Time in UTC.
func (e Entry) Start() time.Time { return time.UnixMilli(e.TimeMS).UTC() }

// Duration is DurationUS as a time.Duration.
func (e Entry) Duration() time.Duration { return time.Duration(e.DurationUS) * time.Microsecond }

// NewEntry describes the segment data: its size, hashes and infohash, for the broadcaster to sign.
// at is truncated to milliseconds and dur to microseconds.
func NewEntry(stream StreamID, kind Kind, seq uint64, at time.Time, dur time.Duration, data []byte) (Entry, error) {
	if dur < 0 || dur.Microseconds() > math.MaxUint32 {
		return Entry{}, fmt.Errorf("live: segment duration %v out of range", dur)
	}
	ih, err := SegmentInfoHash(stream, kind, seq, data)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{
		Stream: stream, Seq: seq, Kind: kind, TimeMS: at.UnixMilli(),
		DurationUS: uint32(dur.Microseconds()), Size: uint64(len(data)),
		SHA256: sha256.Sum256(data), InfoHash: ih,
	}
	return e, e.check()
}

// check holds the rules every entry, signed or not, obeys.
func (e Entry) check() error {
	switch {
	case e.Stream.IsZero():
		return e.reject(ErrMalformed, "no stream id")
	case !e.Kind.valid():
		return e.reject(ErrMalformed, "unknown kind %d", uint8(e.Kind))
	case e.Size == 0:
		return e.reject(ErrMalformed, "empty segment")
	case e.Kind == KindMedia && e.DurationUS == 0:
		return e.reject(ErrMalformed, "media segment without a duration")
	case e.Kind == KindInit && e.DurationUS != 0:
		return e.reject(ErrMalformed, "init segment with a duration (%d µs)", e.DurationUS)
	}
	return nil
}

// SigningContext starts every signed message: it names the protocol and its version and keeps
// these signatures from meaning anything in another protocol that uses the same key.
const SigningContext = "swarmgate-live-v1/entry\x00"

// SigningLen is the length of Entry.SigningBytes.
const SigningLen = len(SigningContext) + 32 + 8 + 1 + 8 + 4 + 8 + 32 + 20

// SigningBytes is the canonical message an entry's signature covers, a fixed layout (big endian):
//
//	offset len  field
//	     0  24  SigningContext "swarmgate-live-v1/entry\x00"
//	    24  32  stream id (ed25519 public key)
//	    56   8  seq (uint64)
//	    64   1  kind (1 init, 2 media)
//	    65   8  time_ms (int64, ms since the Unix epoch, UTC)
//	    73   4  duration_us (uint32)
//	    77   8  size (uint64)
//	    85  32  SHA-256 of the segment
//	   117  20  infohash (BitTorrent v1) of the segment's torrent
//	   137      end
//
// Signatures are plain Ed25519 (RFC 8032, not Ed25519ctx) so WebCrypto can verify them.
func (e Entry) SigningBytes() []byte {
	b := make([]byte, 0, SigningLen)
	b = append(b, SigningContext...)
	b = append(b, e.Stream[:]...)
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = append(b, byte(e.Kind))
	b = binary.BigEndian.AppendUint64(b, uint64(e.TimeMS))
	b = binary.BigEndian.AppendUint32(b, e.DurationUS)
	b = binary.BigEndian.AppendUint64(b, e.Size)
	b = append(b, e.SHA256[:]...)
	b = append(b, e.InfoHash[:]...)
	return b
}

// SignedEntry is an Entry with the broadcaster's signature over its SigningBytes.
type SignedEntry struct {
	Entry
	Sig [ed25519.SignatureSize]byte
}

// Sign signs e with the stream's private key. If e.Stream is unset it becomes the key's stream id;
// if it is set to another stream Sign fails with ErrWrongStream.
func Sign(priv ed25519.PrivateKey, e Entry) (SignedEntry, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return SignedEntry{}, fmt.Errorf("live: not an ed25519 private key (%d bytes)", len(priv))
	}
	id := StreamIDOfKey(priv)
	if e.Stream.IsZero() {
		e.Stream = id
	}
	if e.Stream != id {
		return SignedEntry{}, e.reject(ErrWrongStream, "entry is for stream %s, the key signs for %s", e.Stream, id)
	}
	if err := e.check(); err != nil {
		return SignedEntry{}, err
	}
	s := SignedEntry{Entry: e}
	copy(s.Sig[:], ed25519.Sign(priv, e.SigningBytes()))
	return s, nil
}

// SignSegment is NewEntry then Sign: what the broadcaster does with each segment it cuts.
func SignSegment(priv ed25519.PrivateKey, kind Kind, seq uint64, at time.Time, dur time.Duration, data []byte) (SignedEntry, error) {
	e, err := NewEntry(StreamIDOfKey(priv), kind, seq, at, dur, data)
	if err != nil {
		return SignedEntry{}, err
	}
	return Sign(priv, e)
}

// Verify checks that s belongs to stream id and carries a valid signature of id's key. It says
// nothing about the segment bytes: see VerifySegment.
func Verify(id StreamID, s SignedEntry) error {
	if s.Stream != id {
		return s.reject(ErrWrongStream, "entry names stream %s, want %s", s.Stream, id)
	}
	if err := s.check(); err != nil {
		return err
	}
	if !ed25519.Verify(id.PublicKey(), s.SigningBytes(), s.Sig[:]) {
		return s.reject(ErrBadSignature, "signature does not match the entry and the stream's key")
	}
	return nil
}

// VerifySegment checks that data is the segment e describes: its size and its SHA-256. (Whoever
// fetched data over BitTorrent also checked it against e.InfoHash's pieces.)
func VerifySegment(e Entry, data []byte) error {
	if uint64(len(data)) != e.Size {
		return e.reject(ErrContentMismatch, "%d bytes, the entry says %d", len(data), e.Size)
	}
	if sha256.Sum256(data) != e.SHA256 {
		return e.reject(ErrContentMismatch, "SHA-256 of the bytes differs from the entry's")
	}
	return nil
}

// Errors an entry is rejected with. Test them with errors.Is; the error's text says why.
var (
	ErrMalformed        = errors.New("malformed entry")
	ErrWrongStream      = errors.New("wrong stream")
	ErrBadSignature     = errors.New("bad signature")
	ErrContentMismatch  = errors.New("segment bytes do not match the entry")
	ErrInfoHashMismatch = errors.New("infohash does not match the segment bytes")
	ErrReplay           = errors.New("replay")
	ErrOutOfOrder       = errors.New("out of order")
	ErrTooOld           = errors.New("too old")
	ErrFuture           = errors.New("too far in the future")
	ErrTooLarge         = errors.New("segment too large")
)

// RejectError is why an entry was refused. Err is one of the Err* values above.
type RejectError struct {
	Kind   Kind
	Seq    uint64
	Err    error
	Reason string
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("live: %s segment %d: %v: %s", e.Kind, e.Seq, e.Err, e.Reason)
}

func (e *RejectError) Unwrap() error { return e.Err }

func (e Entry) reject(err error, format string, args ...any) error {
	return &RejectError{Kind: e.Kind, Seq: e.Seq, Err: err, Reason: fmt.Sprintf(format, args...)}
}

// The JSON form of a SignedEntry, as manifests carry it:
//
//	{"stream": "<52-char stream id>", "seq": 12, "kind": "media" | "init",
//	 "time_ms": 1764626400000, "duration_us": 2002000, "size": 912345,
//	 "sha256": "<64 lowercase hex>", "infohash": "<40 lowercase hex>",
//	 "sig": "<standard padded base64 of the 64-byte Ed25519 signature>"}
//
// The signature covers Entry.SigningBytes, never this JSON: verify by rebuilding those bytes.
// JavaScript numbers are exact up to 2^53, which seq, time_ms and size stay far below.
type entryJSON struct {
	Stream     StreamID `json:"stream"`
	Seq        uint64   `json:"seq"`
	Kind       Kind     `json:"kind"`
	TimeMS     int64    `json:"time_ms"`
	DurationUS uint32   `json:"duration_us"`
	Size       uint64   `json:"size"`
	SHA256     string   `json:"sha256"`
	InfoHash   string   `json:"infohash"`
	Sig        string   `json:"sig"`
}

// MarshalJSON writes the documented JSON form.
func (s SignedEntry) MarshalJSON() ([]byte, error) {
	return json.Marshal(entryJSON{
		Stream: s.Stream, Seq: s.Seq, Kind: s.Kind, TimeMS: s.TimeMS, DurationUS: s.DurationUS,
		Size: s.Size, SHA256: hex.EncodeToString(s.SHA256[:]), InfoHash: s.InfoHash.HexString(),
		Sig: base64.StdEncoding.EncodeToString(s.Sig[:]),
	})
}

// UnmarshalJSON reads the documented JSON form strictly (every field, exact lengths). It does not
// verify the signature.
func (s *SignedEntry) UnmarshalJSON(b []byte) error {
	var j entryJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("live: entry JSON: %w", err)
	}
	var out SignedEntry
	out.Entry = Entry{Stream: j.Stream, Seq: j.Seq, Kind: j.Kind, TimeMS: j.TimeMS, DurationUS: j.DurationUS, Size: j.Size}
	if err := decodeHex(out.SHA256[:], j.SHA256); err != nil {
		return fmt.Errorf("live: entry JSON: sha256: %w", err)
	}
	if err := decodeHex(out.InfoHash[:], j.InfoHash); err != nil {
		return fmt.Errorf("live: entry JSON: infohash: %w", err)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(j.Sig)
	if err != nil || len(sig) != len(out.Sig) {
		return fmt.Errorf("live: entry JSON: sig: want base64 of %d bytes", len(out.Sig))
	}
	copy(out.Sig[:], sig)
	if out.Stream.IsZero() {
		return fmt.Errorf("live: entry JSON: no stream")
	}
	if !out.Kind.valid() {
		return fmt.Errorf("live: entry JSON: no kind")
	}
	*s = out
	return nil
}

func decodeHex(dst []byte, s string) error {
	if len(s) != 2*len(dst) {
		return fmt.Errorf("want %d hex characters, got %d", 2*len(dst), len(s))
	}
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		return err
	}
	if hex.EncodeToString(dst) != s {
		return fmt.Errorf("want lowercase hex")
	}
	return nil
}

// ManifestVersion is the version of the manifest format Manifest writes.
const ManifestVersion = 1

// Manifest is the signed entries of a stream's window, oldest first, as served at
// /live/{stream}/manifest.json: {"version": 1, "stream": "<id>", "entries": [<entry JSON>...]}.
// Each entry is signed on its own; a client verifies each with Verify(m.Stream, e).
type Manifest struct {
	Version int           `json:"version"`
	Stream  StreamID      `json:"stream"`
	Entries []SignedEntry `json:"entries"`
	// End is set once the broadcaster ended the stream.
	End *End `json:"end,omitempty"`
}

// Verify checks the manifest's version, every entry's signature for m.Stream and their order.
func (m *Manifest) Verify() error {
	if m.Version != ManifestVersion {
		return fmt.Errorf("live: manifest version %d, want %d", m.Version, ManifestVersion)
	}
	for i, e := range m.Entries {
		if err := Verify(m.Stream, e); err != nil {
			return err
		}
		if i > 0 && !before(m.Entries[i-1].Entry, e.Entry) {
			return e.reject(ErrOutOfOrder, "manifest lists it after %s segment %d", m.Entries[i-1].Kind, m.Entries[i-1].Seq)
		}
	}
	if m.End != nil {
		return VerifyEnd(m.Stream, *m.End)
	}
	return nil
}

// before is the order of a stream's entries: by Seq, an init before the media segment it heads.
func before(a, b Entry) bool {
	if a.Seq != b.Seq {
		return a.Seq < b.Seq
	}
	return a.Kind == KindInit && b.Kind == KindMedia
}
