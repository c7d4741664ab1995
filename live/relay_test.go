package live

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"
)

func TestParseStreamURL(t *testing.T) {
	priv := mustTestKey(t)
	id := StreamIDOfKey(priv).String()
	for _, c := range []struct {
		in, base, err string
	}{
		{in: "http://h:8080/live/" + id, base: "http://h:8080"},
		{in: "https://tv.example.org/live/" + id + "/", base: "https://tv.example.org"},
		{in: "https://tv.example.org/sg/live/" + id + "/index.m3u8", base: "https://tv.example.org/sg"},
		{in: "http://[::1]:1/live/" + id + "/manifest.json", base: "http://[::1]:1"},
		{in: "ftp://h/live/" + id, err: "want http(s)"},
		{in: "http:///live/" + id, err: "want http(s)"},
		{in: "http://h/watch/" + id, err: "want http(s)://host/live/"},
		{in: "http://h/live/" + id + "/3.m4s", err: "want http(s)://host/live/"},
		{in: "http://h/live/nope", err: "stream"},
		{in: "http://h/live/" + id + "?x=1", err: "no user, query"},
		{in: "http://u:p@h/live/" + id, err: "no user, query"},
	} {
		base, got, err := ParseStreamURL(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || base != c.base || got.String() != id {
			t.Errorf("%s: %q %s %v, want %q", c.in, base, got, err, c.base)
		}
	}
}

// TestRelayStartFrom: a joining relay takes the last backlog media segments and the init segment
// heading the first of them, wherever that init lies.
func TestRelayStartFrom(t *testing.T) {
	priv := mustTestKey(t)
	at := time.Now()
	seg := func(kind Kind, seq uint64) SignedEntry {
		dur := time.Second
		if kind == KindInit {
			dur = 0
		}
		se, err := SignSegment(priv, kind, seq, at, dur, []byte{byte(seq), byte(kind)})
		if err != nil {
			t.Fatal(err)
		}
		return se
	}
	// init 0, media 0–9, init 7 (a restart of the encoder), media 7 is after it.
	var entries []SignedEntry
	for seq := uint64(0); seq < 10; seq++ {
		if seq == 0 || seq == 7 {
			entries = append(entries, seg(KindInit, seq))
		}
		entries = append(entries, seg(KindMedia, seq))
	}
	for _, c := range []struct {
		backlog   int
		ok        bool
		floor     uint64 // the floor's seq
		floorKind Kind
		init      int // the init's seq taken from behind the floor, -1 none
	}{
		{backlog: 10, ok: false},
		{backlog: 20, ok: false},
		{backlog: 5, ok: true, floor: 4, floorKind: KindMedia, init: 0},  // media 5–9, init 0 heads 5
		{backlog: 3, ok: true, floor: 6, floorKind: KindMedia, init: -1}, // media 7–9: init 7 comes right before
		{backlog: 2, ok: true, floor: 7, floorKind: KindMedia, init: 7},  // media 8–9, headed by init 7
		{backlog: 9, ok: true, floor: 0, floorKind: KindMedia, init: 0},
	} {
		floor, init, ok := startFrom(entries, c.backlog)
		if ok != c.ok {
			t.Errorf("backlog %d: ok %v", c.backlog, ok)
			continue
		}
		if !ok {
			continue
		}
		if floor.Seq != c.floor || floor.Kind != c.floorKind {
			t.Errorf("backlog %d: floor %s %d, want %s %d", c.backlog, floor.Kind, floor.Seq, c.floorKind, c.floor)
		}
		switch {
		case c.init < 0 && init != nil:
			t.Errorf("backlog %d: init %d, want none", c.backlog, init.Seq)
		case c.init >= 0 && (init == nil || init.Seq != uint64(c.init) || init.Kind != KindInit):
			t.Errorf("backlog %d: init %v, want %d", c.backlog, init, c.init)
		}
	}
}

func mustTestKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestEndSignature: an end verifies only for its stream and key, survives its JSON form, and
// no entry signature passes for an end.
func TestEndSignature(t *testing.T) {
	priv, other := mustTestKey(t), mustTestKey(t)
	id := StreamIDOfKey(priv)
	e := SignEnd(priv, 41, time.Now())
	if err := VerifyEnd(id, e); err != nil {
		t.Fatal(err)
	}
	js, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var back End
	if err := back.UnmarshalJSON(js); err != nil || back != e {
		t.Fatalf("JSON round trip: %v, %+v", err, back)
	}
	altered := e
	altered.LastSeq++
	forged := SignEnd(other, 41, time.Now())
	forged.Stream = id
	se, err := SignSegment(priv, KindMedia, 41, time.Now(), time.Second, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	fromEntry := End{Stream: id, LastSeq: 41, TimeMS: se.TimeMS, Sig: se.Sig}
	for name, bad := range map[string]End{"altered": altered, "another key": forged, "an entry's signature": fromEntry} {
		if err := VerifyEnd(id, bad); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	if err := VerifyEnd(StreamIDOfKey(other), e); err == nil {
		t.Errorf("another stream's id: verified")
	}
	if err := back.UnmarshalJSON([]byte(`{"stream":"` + id.String() + `","last_seq":1,"time_ms":1,"sig":"AA==","x":1}`)); err == nil {
		t.Errorf("unknown field: parsed")
	}
}
