package live

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Fuzz targets for the signed entries and manifests a gateway or relay reads from others: the
// X-Swarmgate-Entry header's JSON, a source's manifest.json. Run one with
//
//	go test -run '^$' -fuzz '^FuzzSignedEntryJSON$' -fuzztime 60s -parallel 1 ./live/

// checkRejected fails unless err is a *RejectError carrying one of wants.
func checkRejected(t *testing.T, what string, err error, wants ...error) {
	t.Helper()
	var re *RejectError
	if !errors.As(err, &re) {
		t.Fatalf("%s: %v is not a *RejectError", what, err)
	}
	for _, w := range wants {
		if errors.Is(err, w) {
			return
		}
	}
	t.Fatalf("%s: %v is none of %v", what, err, wants)
}

func entrySeeds(t testing.TB) [][]byte {
	priv := testKey()
	init := mustEntry(t, priv, KindInit, 3, t0, 0, []byte("init"))
	media := mustEntry(t, priv, KindMedia, 3, t0, 2002*time.Millisecond, []byte("media segment"))
	forged := media
	forged.Size++
	var out [][]byte
	for _, s := range []SignedEntry{init, media, forged} {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return append(out,
		[]byte(strings.Replace(string(out[1]), `"media"`, `"init"`, 1)),
		[]byte(strings.Replace(string(out[1]), `"seq":3`, `"seq":-1`, 1)),
		[]byte(`{"stream":"`+strings.Repeat("a", 52)+`","seq":0,"kind":"media","time_ms":0,"duration_us":0,"size":0,"sha256":"","infohash":"","sig":""}`),
		[]byte(`{}`), []byte(`null`), []byte(`[]`))
}

// FuzzSignedEntryJSON reads an entry as the origin reads EntryHeader's JSON and checks that
// what reads is written back canonically and reads back equal; that Verify refuses it with
// ErrMalformed or ErrBadSignature, or accepts it and then accepts it again after the round trip,
// with the same signed bytes; and that the header form (base64url of the JSON) round-trips too.
func FuzzSignedEntryJSON(f *testing.F) {
	for _, b := range entrySeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s SignedEntry
		if err := json.Unmarshal(b, &s); err != nil {
			if !strings.Contains(err.Error(), "live: entry JSON") && !strings.HasPrefix(err.Error(), "json: ") &&
				!strings.HasPrefix(err.Error(), "invalid character") && !strings.HasPrefix(err.Error(), "unexpected end") {
				t.Fatalf("error %q does not say it is the entry's JSON", err)
			}
			return
		}
		js, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("an entry that reads does not write: %v", err)
		}
		var back SignedEntry
		if err := json.Unmarshal(js, &back); err != nil || back != s {
			t.Fatalf("%s written as %s reads back as %+v, %v", b, js, back, err)
		}
		if js2, _ := json.Marshal(back); !bytes.Equal(js2, js) {
			t.Fatalf("written twice differently: %s, %s", js, js2)
		}
		hdr, err := EntryHeaderValue(s)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(hdr)
		if err != nil || !bytes.Equal(raw, js) {
			t.Fatalf("header %q does not carry the JSON: %v", hdr, err)
		}
		err = Verify(s.Stream, s)
		if err != nil {
			checkRejected(t, "Verify", err, ErrMalformed, ErrBadSignature)
			return
		}
		if err := Verify(back.Stream, back); err != nil || !bytes.Equal(back.SigningBytes(), s.SigningBytes()) {
			t.Fatalf("a verified entry, round-tripped, fails: %v", err)
		}
		if len(s.SigningBytes()) != SigningLen {
			t.Fatalf("signing bytes of %d bytes, want %d", len(s.SigningBytes()), SigningLen)
		}
	})
}

// FuzzSignEntry signs entries of any field values with a fixed key: Sign refuses what check
// refuses, with ErrMalformed; what it signs verifies, survives JSON, and stops verifying when
// any single field changes.
func FuzzSignEntry(f *testing.F) {
	f.Add(uint64(0), uint8(KindInit), int64(t0.UnixMilli()), uint32(0), uint64(4), []byte("sha"), []byte("ih"))
	f.Add(uint64(1<<53), uint8(KindMedia), int64(-1), uint32(2002000), uint64(1<<20), []byte{}, []byte{0xff})
	f.Add(uint64(7), uint8(KindMedia), int64(0), uint32(0), uint64(1), []byte{}, []byte{})
	f.Add(uint64(7), uint8(3), int64(0), uint32(1), uint64(1), []byte{}, []byte{})
	f.Add(uint64(1<<64-1), uint8(KindInit), int64(-1<<63), uint32(1<<32-1), uint64(0), []byte{}, []byte{})
	priv := testKey()
	id := StreamIDOfKey(priv)
	f.Fuzz(func(t *testing.T, seq uint64, kind uint8, timeMS int64, durUS uint32, size uint64, sha, ih []byte) {
		e := Entry{Seq: seq, Kind: Kind(kind), TimeMS: timeMS, DurationUS: durUS, Size: size}
		copy(e.SHA256[:], sha)
		copy(e.InfoHash[:], ih)
		s, err := Sign(priv, e)
		if err != nil {
			checkRejected(t, "Sign", err, ErrMalformed)
			return
		}
		if s.Stream != id {
			t.Fatalf("signed for stream %s, want %s", s.Stream, id)
		}
		if err := Verify(id, s); err != nil {
			t.Fatalf("a signed entry does not verify: %v", err)
		}
		js, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back SignedEntry
		if err := json.Unmarshal(js, &back); err != nil || back != s {
			t.Fatalf("%s reads back as %+v, %v", js, back, err)
		}
		// Each field the signature covers, changed alone.
		for name, change := range map[string]func(*SignedEntry){
			"seq":      func(x *SignedEntry) { x.Seq++ },
			"kind":     func(x *SignedEntry) { x.Kind ^= KindInit | KindMedia },
			"time":     func(x *SignedEntry) { x.TimeMS++ },
			"duration": func(x *SignedEntry) { x.DurationUS ^= 1 },
			"size":     func(x *SignedEntry) { x.Size ^= 1 },
			"sha256":   func(x *SignedEntry) { x.SHA256[31] ^= 1 },
			"infohash": func(x *SignedEntry) { x.InfoHash[0] ^= 1 },
			"sig":      func(x *SignedEntry) { x.Sig[5] ^= 1 },
		} {
			x := s
			change(&x)
			if err := Verify(id, x); err == nil {
				t.Fatalf("changing %s still verifies: %+v", name, x)
			} else {
				checkRejected(t, "Verify after changing "+name, err, ErrMalformed, ErrBadSignature)
			}
		}
	})
}

// FuzzManifest reads a manifest as a relay or player does: Verify refuses it with a clear error,
// or it verifies again, equal, after being written and read back.
func FuzzManifest(f *testing.F) {
	priv := testKey()
	id := StreamIDOfKey(priv)
	m := Manifest{Version: ManifestVersion, Stream: id, Entries: []SignedEntry{
		mustEntry(f, priv, KindInit, 0, t0, 0, []byte("init")),
		mustEntry(f, priv, KindMedia, 0, t0, time.Second, []byte("m0")),
		mustEntry(f, priv, KindMedia, 2, t0.Add(2*time.Second), time.Second, []byte("m2")),
	}}
	ended := m
	end := SignEnd(priv, 2, t0.Add(3*time.Second))
	ended.End = &end
	swapped := m
	swapped.Entries = []SignedEntry{m.Entries[1], m.Entries[0]}
	for _, x := range []Manifest{m, ended, swapped, {Version: 2, Stream: id}} {
		b, err := json.Marshal(x)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"stream":"` + id.String() + `","entries":[],"end":{"stream":"` + id.String() + `","last_seq":0,"time_ms":0,"sig":""}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Manifest
		if json.Unmarshal(b, &m) != nil {
			return
		}
		if err := m.Verify(); err != nil {
			if m.Version != ManifestVersion {
				if !strings.HasPrefix(err.Error(), "live: manifest version") {
					t.Fatalf("manifest version %d: %v", m.Version, err)
				}
				return
			}
			checkRejected(t, "Manifest.Verify", err, ErrMalformed, ErrBadSignature, ErrWrongStream, ErrOutOfOrder)
			return
		}
		js, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("a verified manifest does not write: %v", err)
		}
		var back Manifest
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatalf("%s does not read back: %v", js, err)
		}
		if !reflect.DeepEqual(back, m) {
			t.Fatalf("%s reads back as %+v, first %+v", js, back, m)
		}
		if err := back.Verify(); err != nil {
			t.Fatalf("a verified manifest, round-tripped, fails: %v", err)
		}
	})
}
