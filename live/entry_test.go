package live

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// testKey is a fixed key, so the golden values below pin the format for other implementations.
func testKey() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

var t0 = time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)

func mustEntry(t testing.TB, priv ed25519.PrivateKey, kind Kind, seq uint64, at time.Time, dur time.Duration, data []byte) SignedEntry {
	t.Helper()
	e, err := NewEntry(StreamIDOfKey(priv), kind, seq, at, dur, data)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Sign(priv, e)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignVerifyRoundTrip(t *testing.T) {
	priv := testKey()
	id := StreamIDOfKey(priv)
	data := []byte("segment bytes")
	for _, s := range []SignedEntry{
		mustEntry(t, priv, KindInit, 0, t0, 0, []byte("ftyp moov")),
		mustEntry(t, priv, KindMedia, 0, t0, 2002*time.Millisecond, data),
		mustEntry(t, priv, KindMedia, 1<<40, t0.Add(time.Hour), time.Microsecond, data),
	} {
		if err := Verify(id, s); err != nil {
			t.Errorf("Verify(%s %d): %v", s.Kind, s.Seq, err)
		}
	}
	s := mustEntry(t, priv, KindMedia, 7, t0, 2*time.Second, data)
	if err := VerifySegment(s.Entry, data); err != nil {
		t.Errorf("VerifySegment: %v", err)
	}
	if s.Start() != t0 || s.Duration() != 2*time.Second || s.Size != uint64(len(data)) || s.SHA256 != sha256.Sum256(data) {
		t.Errorf("entry fields: %+v", s.Entry)
	}
	if ih, _ := SegmentInfoHash(id, KindMedia, 7, data); s.InfoHash != ih {
		t.Errorf("entry infohash %v, want %v", s.InfoHash, ih)
	}

	// Sign fills in the stream and refuses someone else's.
	e := s.Entry
	e.Stream = StreamID{}
	if got, err := Sign(priv, e); err != nil || got.Stream != id {
		t.Errorf("Sign without a stream: %v, %v", got.Stream, err)
	}
	other, _ := GenerateKey()
	if _, err := Sign(other, s.Entry); !errors.Is(err, ErrWrongStream) {
		t.Errorf("Sign with another stream's key: %v, want ErrWrongStream", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	priv := testKey()
	id := StreamIDOfKey(priv)
	good := mustEntry(t, priv, KindMedia, 5, t0, 2*time.Second, []byte("media"))
	otherKey, _ := GenerateKey()
	otherID := StreamIDOfKey(otherKey)
	// The same entry signed by another key, claiming our stream.
	forged := good
	copy(forged.Sig[:], ed25519.Sign(otherKey, good.SigningBytes()))

	for _, tc := range []struct {
		name   string
		id     StreamID
		mutate func(*SignedEntry)
		want   error
	}{
		{"seq", id, func(s *SignedEntry) { s.Seq++ }, ErrBadSignature},
		{"kind", id, func(s *SignedEntry) { s.Kind = KindInit; s.DurationUS = 0 }, ErrBadSignature},
		{"time", id, func(s *SignedEntry) { s.TimeMS++ }, ErrBadSignature},
		{"duration", id, func(s *SignedEntry) { s.DurationUS++ }, ErrBadSignature},
		{"size", id, func(s *SignedEntry) { s.Size++ }, ErrBadSignature},
		{"sha256", id, func(s *SignedEntry) { s.SHA256[31] ^= 1 }, ErrBadSignature},
		{"infohash", id, func(s *SignedEntry) { s.InfoHash[0] ^= 0x80 }, ErrBadSignature},
		{"signature", id, func(s *SignedEntry) { s.Sig[10] ^= 1 }, ErrBadSignature},
		{"zero signature", id, func(s *SignedEntry) { s.Sig = [64]byte{} }, ErrBadSignature},
		{"signed by another key", id, func(s *SignedEntry) { *s = forged }, ErrBadSignature},
		{"stream field changed", id, func(s *SignedEntry) { s.Stream = otherID }, ErrWrongStream},
		{"verified against another stream", otherID, func(*SignedEntry) {}, ErrWrongStream},
		{"re-signed for another stream", id, func(s *SignedEntry) {
			e := s.Entry
			e.Stream = otherID
			*s, _ = Sign(otherKey, e)
		}, ErrWrongStream},
		{"unknown kind", id, func(s *SignedEntry) { s.Kind = 9 }, ErrMalformed},
		{"empty", id, func(s *SignedEntry) { s.Size = 0 }, ErrMalformed},
		{"media without duration", id, func(s *SignedEntry) { s.DurationUS = 0 }, ErrMalformed},
		{"init with duration", id, func(s *SignedEntry) { s.Kind = KindInit }, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			tc.mutate(&s)
			err := Verify(tc.id, s)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
			var re *RejectError
			if !errors.As(err, &re) || re.Reason == "" || !strings.Contains(err.Error(), tc.want.Error()) {
				t.Errorf("error %q is not a RejectError with a reason", err)
			}
		})
	}
	if err := Verify(id, good); err != nil {
		t.Fatalf("the untouched entry fails: %v", err)
	}
}

func TestVerifySegment(t *testing.T) {
	data := []byte("0123456789")
	s := mustEntry(t, testKey(), KindMedia, 1, t0, time.Second, data)
	for _, tc := range []struct {
		name string
		data []byte
		ok   bool
	}{
		{"same", data, true},
		{"copy", bytes.Clone(data), true},
		{"flipped byte", []byte("0123456788"), false},
		{"truncated", data[:9], false},
		{"extended", append(bytes.Clone(data), 'x'), false},
		{"nil", nil, false},
	} {
		err := VerifySegment(s.Entry, tc.data)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrContentMismatch)) {
			t.Errorf("%s: VerifySegment = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestSigningBytesLayout(t *testing.T) {
	priv := testKey()
	s := mustEntry(t, priv, KindMedia, 0x0102030405060708, time.UnixMilli(1764626400123), 2002*time.Millisecond, []byte("x"))
	b := s.SigningBytes()
	if len(b) != SigningLen || SigningLen != 137 {
		t.Fatalf("signing bytes: %d bytes, SigningLen %d, want 137", len(b), SigningLen)
	}
	for _, f := range []struct {
		name string
		off  int
		want []byte
	}{
		{"context", 0, []byte("swarmgate-live-v1/entry\x00")},
		{"stream", 24, s.Stream[:]},
		{"seq", 56, []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{"kind", 64, []byte{2}},
		{"time_ms", 65, binary.BigEndian.AppendUint64(nil, 1764626400123)},
		{"duration_us", 73, binary.BigEndian.AppendUint32(nil, 2002000)},
		{"size", 77, binary.BigEndian.AppendUint64(nil, 1)},
		{"sha256", 85, s.SHA256[:]},
		{"infohash", 117, s.InfoHash[:]},
	} {
		if got := b[f.off : f.off+len(f.want)]; !bytes.Equal(got, f.want) {
			t.Errorf("%s at %d: %x, want %x", f.name, f.off, got, f.want)
		}
	}
	// Golden values for other implementations (the browser's verifier), computed independently with
	// Python's cryptography package from this layout: key seed 00 01 .. 1f, data "x".
	for _, g := range []struct{ name, got, want string }{
		{"stream id", s.Stream.String(), "aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4a"},
		{"infohash", s.InfoHash.HexString(), "957d465afdd294099bc87f5fc6e3cc40dea7ffa9"},
		{"signature", hex.EncodeToString(s.Sig[:]), "9572855b348c37ad41b9125735e6535310bda540dbb75ee64dfc4b25f484c9e2" +
			"17239f444300c31d9c6d0bb9f24ff8b4b287777b80571f1faf092d544ac1970e"},
	} {
		if g.got != g.want {
			t.Errorf("%s: %s, want %s", g.name, g.got, g.want)
		}
	}
}

func TestEntryJSON(t *testing.T) {
	priv := testKey()
	s := mustEntry(t, priv, KindInit, 3, t0, 0, []byte("init"))
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	json.Unmarshal(b, &fields)
	for k, want := range map[string]any{
		"stream": s.Stream.String(), "seq": 3.0, "kind": "init", "time_ms": float64(t0.UnixMilli()),
		"duration_us": 0.0, "size": 4.0, "sha256": hex.EncodeToString(s.SHA256[:]), "infohash": s.InfoHash.HexString(),
	} {
		if fields[k] != want {
			t.Errorf("JSON %s = %v, want %v (%s)", k, fields[k], want, b)
		}
	}
	var back SignedEntry
	if err := json.Unmarshal(b, &back); err != nil || back != s {
		t.Fatalf("round trip: %v, %+v", err, back)
	}
	if err := Verify(s.Stream, back); err != nil {
		t.Errorf("round-tripped entry does not verify: %v", err)
	}

	replace := func(field string, v any) string {
		m := map[string]any{}
		json.Unmarshal(b, &m)
		if v == nil {
			delete(m, field)
		} else {
			m[field] = v
		}
		out, _ := json.Marshal(m)
		return string(out)
	}
	for _, tc := range []struct{ name, in string }{
		{"not JSON", "{"},
		{"unknown field", replace("extra", 1)},
		{"no stream", replace("stream", nil)},
		{"bad stream", replace("stream", "abc")},
		{"no kind", replace("kind", nil)},
		{"bad kind", replace("kind", "audio")},
		{"short sha256", replace("sha256", "abcd")},
		{"uppercase sha256", replace("sha256", strings.ToUpper(hex.EncodeToString(s.SHA256[:])))},
		{"bad infohash", replace("infohash", strings.Repeat("zz", 20))},
		{"no sig", replace("sig", nil)},
		{"short sig", replace("sig", "AAAA")},
		{"negative size", replace("size", -1)},
	} {
		var got SignedEntry
		if err := json.Unmarshal([]byte(tc.in), &got); err == nil {
			t.Errorf("%s: %s was accepted", tc.name, tc.in)
		}
	}
}

func TestManifestVerify(t *testing.T) {
	priv := testKey()
	id := StreamIDOfKey(priv)
	m := Manifest{Version: ManifestVersion, Stream: id, Entries: []SignedEntry{
		mustEntry(t, priv, KindInit, 0, t0, 0, []byte("init")),
		mustEntry(t, priv, KindMedia, 0, t0, time.Second, []byte("m0")),
		mustEntry(t, priv, KindMedia, 1, t0.Add(time.Second), time.Second, []byte("m1")),
	}}
	b, _ := json.Marshal(m)
	var back Manifest
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Verify(); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	swapped := back
	swapped.Entries = []SignedEntry{back.Entries[0], back.Entries[2], back.Entries[1]}
	if err := swapped.Verify(); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("reordered manifest: %v, want ErrOutOfOrder", err)
	}
	tampered := back
	tampered.Entries = append([]SignedEntry(nil), back.Entries...)
	tampered.Entries[1].Size++
	if err := tampered.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered manifest: %v, want ErrBadSignature", err)
	}
	other, _ := GenerateKey()
	foreign := back
	foreign.Stream = StreamIDOfKey(other)
	if err := foreign.Verify(); !errors.Is(err, ErrWrongStream) {
		t.Errorf("manifest under another stream: %v, want ErrWrongStream", err)
	}
	future := back
	future.Version = 2
	if err := future.Verify(); err == nil {
		t.Error("manifest version 2 accepted")
	}
}
