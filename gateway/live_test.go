package gateway

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/live"
)

const testIngestToken = "ingest-token-0123456789abcdef"

func mustKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	k, err := live.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func entryHeader(t testing.TB, se live.SignedEntry) string {
	t.Helper()
	b, err := json.Marshal(se)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// putSegment uploads data as stream's segment with entry se; hdr adds or overrides headers
// ("" deletes one).
func putSegment(t testing.TB, r *running, stream live.StreamID, se live.SignedEntry, data []byte, hdr map[string]string) response {
	t.Helper()
	h := map[string]string{
		"Authorization":  "Bearer " + testIngestToken,
		live.EntryHeader: entryHeader(t, se),
	}
	for k, v := range hdr {
		h[k] = v
	}
	for k, v := range h {
		if v == "" {
			delete(h, k)
		}
	}
	return r.do(t, http.MethodPut, fmt.Sprintf("/live/%s/%s/%d", stream, se.Kind, se.Seq), h, bytes.NewReader(data))
}

func signSeg(t testing.TB, priv ed25519.PrivateKey, kind live.Kind, seq uint64, at time.Time, data []byte) live.SignedEntry {
	t.Helper()
	dur := time.Second
	if kind == live.KindInit {
		dur = 0
	}
	se, err := live.SignSegment(priv, kind, seq, at, dur, data)
	if err != nil {
		t.Fatal(err)
	}
	return se
}

// TestLiveIngestBadInputs: every kind of bad upload is refused with its status and reason,
// counted by result, and the stream goes on with the next good segment.
func TestLiveIngestBadInputs(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.IngestToken = testIngestToken })
	priv, other := mustKey(t), mustKey(t)
	id := live.StreamIDOfKey(priv)
	now := time.Now()
	seg := func(seq uint64) []byte { return []byte(fmt.Sprintf("media segment %d of %s", seq, id)) }

	if res := putSegment(t, r, id, signSeg(t, priv, live.KindInit, 0, now, []byte("init")), []byte("init"), nil); res.status != http.StatusCreated {
		t.Fatalf("init: %d %s", res.status, res.body)
	}
	if res := putSegment(t, r, id, signSeg(t, priv, live.KindMedia, 0, now, seg(0)), seg(0), nil); res.status != http.StatusCreated {
		t.Fatalf("media 0: %d %s", res.status, res.body)
	}
	// Leave seq 1 out, so that it can come out of order later.
	next := uint64(2)

	bigEntry := func() live.SignedEntry {
		e, err := live.NewEntry(id, live.KindMedia, next, now, time.Second, seg(next))
		if err != nil {
			t.Fatal(err)
		}
		e.Size = 64 << 20
		se, err := live.Sign(priv, e)
		if err != nil {
			t.Fatal(err)
		}
		return se
	}
	cases := []struct {
		name   string
		upload func() response
		status int
		reason string // in the error
		result string // metric label
	}{
		{"no token", func() response {
			return putSegment(t, r, id, signSeg(t, priv, live.KindMedia, next, now, seg(next)), seg(next), map[string]string{"Authorization": ""})
		}, 401, "ingest token", live.ResultUnauthorized},
		{"wrong token", func() response {
			return putSegment(t, r, id, signSeg(t, priv, live.KindMedia, next, now, seg(next)), seg(next), map[string]string{"Authorization": "Bearer not-the-token-at-all"})
		}, 401, "wrong ingest token", live.ResultUnauthorized},
		{"bad signature", func() response {
			se := signSeg(t, priv, live.KindMedia, next, now, seg(next))
			se.Sig[7] ^= 1
			return putSegment(t, r, id, se, seg(next), nil)
		}, 422, "bad signature", live.ResultBadSignature},
		{"entry for another stream", func() response {
			return putSegment(t, r, id, signSeg(t, other, live.KindMedia, next, now, seg(next)), seg(next), nil)
		}, 422, "wrong stream", live.ResultWrongStream},
		{"replay of an old seq", func() response {
			return putSegment(t, r, id, signSeg(t, priv, live.KindMedia, 0, now, seg(0)), seg(0), nil)
		}, 409, "replay", live.ResultReplay},
		{"out of order", func() response {
			return putSegment(t, r, id, signSeg(t, priv, live.KindMedia, 1, now, seg(1)), seg(1), nil)
		}, 409, "out of order", live.ResultOutOfOrder},
		{"too old", func() response {
			return putSegment(t, r, id, signSeg(t, priv, live.KindMedia, next, now.Add(-time.Hour), seg(next)), seg(next), nil)
		}, 409, "too old", live.ResultTooOld},
		{"too large", func() response { return putSegment(t, r, id, bigEntry(), seg(next), nil) }, 413, "larger than the limit", live.ResultTooLarge},
		{"body not matching the entry's hash", func() response {
			body := bytes.ToUpper(seg(next))
			return putSegment(t, r, id, signSeg(t, priv, live.KindMedia, next, now, seg(next)), body, nil)
		}, 422, "SHA-256", live.ResultContentMismatch},
		{"URL seq differs from the entry's", func() response {
			se := signSeg(t, priv, live.KindMedia, next, now, seg(next))
			h := map[string]string{"Authorization": "Bearer " + testIngestToken, live.EntryHeader: entryHeader(t, se)}
			return r.do(t, http.MethodPut, fmt.Sprintf("/live/%s/media/%d", id, next+1), h, bytes.NewReader(seg(next)))
		}, 400, "the URL says media segment", live.ResultMalformed},
		{"no entry header", func() response {
			return putSegment(t, r, id, signSeg(t, priv, live.KindMedia, next, now, seg(next)), seg(next), map[string]string{live.EntryHeader: ""})
		}, 400, live.EntryHeader, live.ResultMalformed},
	}
	want := map[string]int{live.ResultAccepted: 2}
	for _, c := range cases {
		res := c.upload()
		wantJSONError(t, c.name, res, c.status)
		if !strings.Contains(string(res.body), c.reason) {
			t.Errorf("%s: error %s does not say %q", c.name, res.body, c.reason)
		}
		want[c.result]++
		// The stream goes on.
		if res := putSegment(t, r, id, signSeg(t, priv, live.KindMedia, next, now, seg(next)), seg(next), nil); res.status != http.StatusCreated {
			t.Fatalf("after %s: good segment %d: %d %s", c.name, next, res.status, res.body)
		}
		want[live.ResultAccepted]++
		next++
	}

	metrics := string(r.get(t, "/metrics", nil).body)
	for result, n := range want {
		line := fmt.Sprintf("swarmgate_live_segments_total{result=%q} %d\n", result, n)
		if !strings.Contains(metrics, line) {
			t.Errorf("metrics lack %q", line)
		}
	}
	// Per stream, every refusal but the unauthenticated ones (which prove nothing about the stream).
	res := r.get(t, "/api/live/"+id.String(), nil)
	var st live.StreamStatus
	if err := json.Unmarshal(res.body, &st); err != nil || res.status != 200 {
		t.Fatalf("status: %d %s %v", res.status, res.body, err)
	}
	if st.State != live.StateLive || st.EdgeSeq == nil || *st.EdgeSeq != next-1 || st.NextSeq != next ||
		st.Rejections[live.ResultBadSignature] != 1 || st.Rejected != uint64(len(cases)-2) || st.Gaps != 1 || st.Missing != 1 {
		t.Errorf("status after the bad inputs: %s", res.body)
	}
	res = r.get(t, "/api/live", nil)
	if res.status != 200 || !strings.Contains(string(res.body), id.String()) {
		t.Errorf("/api/live: %d %s", res.status, res.body)
	}
	// The playlist numbers the dropped seq 1 with a gap placeholder.
	pl := string(r.get(t, "/live/"+id.String()+"/index.m3u8", nil).body)
	if !strings.Contains(pl, "#EXT-X-GAP\n#EXT-X-PROGRAM-DATE-TIME:") || !strings.Contains(pl, "\n1.m4s\n") {
		t.Errorf("playlist without the gap for seq 1:\n%s", pl)
	}
}

// TestLiveIngestOff: without --ingest-token uploads are refused with 403, whatever they carry.
func TestLiveIngestOff(t *testing.T) {
	r := startGateway(t, nil)
	priv := mustKey(t)
	id := live.StreamIDOfKey(priv)
	res := putSegment(t, r, id, signSeg(t, priv, live.KindInit, 0, time.Now(), []byte("init")), []byte("init"), nil)
	wantJSONError(t, "upload with ingest off", res, http.StatusForbidden)
	if !strings.Contains(string(res.body), "it has no IngestToken") {
		t.Errorf("403 does not say how to turn ingest on: %s", res.body)
	}
	wantJSONError(t, "unknown stream", r.get(t, "/live/"+id.String()+"/index.m3u8", nil), http.StatusNotFound)
	if m := string(r.get(t, "/metrics", nil).body); !strings.Contains(m, `swarmgate_live_segments_total{result="ingest_off"} 1`) {
		t.Errorf("ingest_off not counted")
	}
}

// TestLiveMaxBytes: past --live-max-bytes the oldest segments are dropped, and the playlist, so
// how far back viewers can seek, starts at the oldest one the gateway can still serve.
func TestLiveMaxBytes(t *testing.T) {
	r := startGateway(t, func(c *Config) { c.IngestToken = testIngestToken; c.LiveMaxBytes = 1 << 20 })
	priv := mustKey(t)
	id := live.StreamIDOfKey(priv)
	t0 := time.Now().Add(-time.Minute)
	init := []byte("init segment")
	if res := putSegment(t, r, id, signSeg(t, priv, live.KindInit, 0, t0, init), init, nil); res.status != http.StatusCreated {
		t.Fatalf("init: %d %s", res.status, res.body)
	}
	for seq := uint64(0); seq < 6; seq++ { // 6 × 300 KiB: the first 3 cannot stay under 1 MiB
		data := bytes.Repeat([]byte{byte(seq)}, 300<<10)
		if res := putSegment(t, r, id, signSeg(t, priv, live.KindMedia, seq, t0.Add(time.Duration(seq)*time.Second), data), data, nil); res.status != http.StatusCreated {
			t.Fatalf("media %d: %d %s", seq, res.status, res.body)
		}
	}
	pl := string(r.get(t, "/live/"+id.String()+"/index.m3u8", nil).body)
	if !strings.Contains(pl, "#EXT-X-MEDIA-SEQUENCE:3\n") || strings.Contains(pl, "\n2.m4s") || !strings.Contains(pl, "\n5.m4s") {
		t.Errorf("playlist, want it to start at media 3:\n%s", pl)
	}
	wantJSONError(t, "a dropped segment", r.get(t, "/live/"+id.String()+"/2.m4s", nil), http.StatusNotFound)
	if res := r.get(t, "/live/"+id.String()+"/3.m4s", nil); res.status != http.StatusOK || len(res.body) != 300<<10 {
		t.Errorf("media 3: %d, %d bytes", res.status, len(res.body))
	}
}

// TestLiveConfigNamesTheSetting: the live settings that cannot work are refused by name.
func TestLiveConfigNamesTheSetting(t *testing.T) {
	for _, tc := range []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.IngestToken = "short" }, "IngestToken must be at least 16"},
		{func(c *Config) { c.LiveWindow = 0 }, "LiveWindow"},
		{func(c *Config) { c.MaxLiveStreams = 0 }, "MaxLiveStreams 0: must be at least 1"},
		{func(c *Config) { c.LiveMaxBytes = 256 }, "LiveMaxBytes 256: must be at least"},
	} {
		cfg := testConfig(t)
		tc.mutate(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate: %v, want an error with %q", err, tc.want)
		}
	}
}
