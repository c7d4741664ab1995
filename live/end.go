package live

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// EndSigningContext starts the message an End's signature covers; it differs from
// SigningContext, so that no entry signature can pass for an end and no end for an entry.
const EndSigningContext = "swarmgate-live-v1/end\x00"

// End is the broadcaster's signed statement that a stream ended after media segment LastSeq:
// players then see #EXT-X-ENDLIST and the stream's state is "ended". It is signed like an entry,
// so that no gateway or relay can end a stream its broadcaster did not end (though any can stop
// serving one). A later segment (a broadcaster restarting) lifts it.
type End struct {
	Stream  StreamID
	LastSeq uint64
	TimeMS  int64
	Sig     [ed25519.SignatureSize]byte
}

// SigningBytes is EndSigningContext, the stream id, last seq (uint64) and time_ms (int64), big
// endian.
func (e End) SigningBytes() []byte {
	b := make([]byte, 0, len(EndSigningContext)+32+16)
	b = append(b, EndSigningContext...)
	b = append(b, e.Stream[:]...)
	b = binary.BigEndian.AppendUint64(b, e.LastSeq)
	return binary.BigEndian.AppendUint64(b, uint64(e.TimeMS))
}

// SignEnd signs the end of priv's stream after media segment lastSeq.
func SignEnd(priv ed25519.PrivateKey, lastSeq uint64, at time.Time) End {
	e := End{Stream: StreamIDOfKey(priv), LastSeq: lastSeq, TimeMS: at.UnixMilli()}
	copy(e.Sig[:], ed25519.Sign(priv, e.SigningBytes()))
	return e
}

// VerifyEnd checks that e ends stream id and carries id's signature.
func VerifyEnd(id StreamID, e End) error {
	if e.Stream != id {
		return &RejectError{Seq: e.LastSeq, Err: ErrWrongStream, Reason: fmt.Sprintf("end names stream %s, want %s", e.Stream, id)}
	}
	if !ed25519.Verify(id.PublicKey(), e.SigningBytes(), e.Sig[:]) {
		return &RejectError{Seq: e.LastSeq, Err: ErrBadSignature, Reason: "the end's signature does not match the stream's key"}
	}
	return nil
}

type endJSON struct {
	Stream  StreamID `json:"stream"`
	LastSeq uint64   `json:"last_seq"`
	TimeMS  int64    `json:"time_ms"`
	Sig     string   `json:"sig"`
}

// MarshalJSON writes {"stream", "last_seq", "time_ms", "sig" (standard padded base64)}.
func (e End) MarshalJSON() ([]byte, error) {
	return json.Marshal(endJSON{Stream: e.Stream, LastSeq: e.LastSeq, TimeMS: e.TimeMS, Sig: base64.StdEncoding.EncodeToString(e.Sig[:])})
}

// UnmarshalJSON reads MarshalJSON's form strictly. It does not verify the signature.
func (e *End) UnmarshalJSON(b []byte) error {
	var j endJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("live: end JSON: %w", err)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(j.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("live: end JSON: sig: want base64 of %d bytes", ed25519.SignatureSize)
	}
	if j.Stream.IsZero() {
		return fmt.Errorf("live: end JSON: no stream")
	}
	*e = End{Stream: j.Stream, LastSeq: j.LastSeq, TimeMS: j.TimeMS}
	copy(e.Sig[:], sig)
	return nil
}

// End marks the window's stream ended, if e is the broadcaster's and no media segment after
// e.LastSeq was accepted (ErrOutOfOrder otherwise). Ending twice keeps the first end.
func (w *Window) End(e End) error {
	if err := VerifyEnd(w.cfg.Stream, e); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.anyMedia && w.lastSeq > e.LastSeq {
		return &RejectError{Seq: e.LastSeq, Err: ErrOutOfOrder, Reason: fmt.Sprintf("media segment %d came after it", w.lastSeq)}
	}
	if w.end == nil {
		w.end = &e
		if w.store != nil {
			if err := w.store.putEnd(e); err != nil {
				w.log.Warn("keeping a live stream's end on disk failed: after a restart it will not show as ended", "stream", w.cfg.Stream, "err", err)
			}
		}
	}
	return nil
}

// Ended is the end of the stream, if its broadcaster ended it (and did not start again since).
func (w *Window) Ended() (End, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.end == nil {
		return End{}, false
	}
	return *w.end, true
}
