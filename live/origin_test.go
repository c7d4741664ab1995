package live

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const originToken = "origin-test-token-0123456789"

func originPut(t *testing.T, o *Origin, se SignedEntry, data []byte) *httptest.ResponseRecorder {
	t.Helper()
	h, err := EntryHeaderValue(se)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPut, fmt.Sprintf("/live/%s/%s/%d", se.Stream, se.Kind, se.Seq), bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+originToken)
	req.Header.Set(EntryHeader, h)
	rec := httptest.NewRecorder()
	o.ServeHTTP(rec, req)
	return rec
}

// newTestOrigin makes an origin with the defaults and originToken, changed by mutate (if not nil).
func newTestOrigin(t testing.TB, mutate func(*OriginConfig)) *Origin {
	t.Helper()
	cfg := DefaultOriginConfig()
	cfg.IngestToken = originToken
	if mutate != nil {
		mutate(&cfg)
	}
	o, err := NewOrigin(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func originStatus(t *testing.T, o *Origin, id StreamID) StreamStatus {
	t.Helper()
	rec := httptest.NewRecorder()
	o.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/live/"+id.String(), nil))
	var st StreamStatus
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &st) != nil {
		t.Fatalf("status: %d %s", rec.Code, rec.Body)
	}
	return st
}

// TestOriginStates: a stream is live while segments come, stalled after 3 target durations
// without one, ended once its window emptied; ended streams make room under MaxStreams.
func TestOriginStates(t *testing.T) {
	c := &clock{now: t0}
	o := newTestOrigin(t, func(oc *OriginConfig) { oc.Window, oc.MaxStreams, oc.Now = time.Minute, 1, c.Now })
	b, b2 := newBroadcaster(t), newBroadcaster(t)
	// A refused first upload (media without its init) makes no stream (and takes no slot).
	old, oldData := b2.segment(KindMedia, 0, c.Now().Add(-time.Hour), time.Second)
	if rec := originPut(t, o, old, oldData); rec.Code != http.StatusConflict || o.stream(b2.id) != nil {
		t.Fatalf("too old first upload: %d %s", rec.Code, rec.Body)
	}
	for _, kind := range []Kind{KindInit, KindMedia} {
		dur := 2 * time.Second
		if kind == KindInit {
			dur = 0
		}
		se, data := b.segment(kind, 0, c.Now(), dur)
		if rec := originPut(t, o, se, data); rec.Code != http.StatusCreated {
			t.Fatalf("%s: %d %s", kind, rec.Code, rec.Body)
		}
	}
	if st := originStatus(t, o, b.id); st.State != StateLive || st.BitrateBPS != float64(8*len(fmt.Sprintf("media segment 0 of %s", b.id)))/2 {
		t.Errorf("after a segment: %+v", st)
	}
	// A second stream does not fit.
	se, data := b2.segment(KindInit, 0, c.Now(), 0)
	if rec := originPut(t, o, se, data); rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "limit of 1 live streams (MaxStreams)") {
		t.Errorf("second stream over MaxStreams: %d %s", rec.Code, rec.Body)
	}
	c.Advance(7 * time.Second) // over 3 × the 2 s target
	if st := originStatus(t, o, b.id); st.State != StateStalled {
		t.Errorf("after 7 s without a segment: %s, want stalled", st.State)
	}
	c.Advance(time.Minute)
	if st := originStatus(t, o, b.id); st.State != StateEnded || st.EdgeSeq != nil || st.NextSeq != 1 {
		t.Errorf("after the window emptied: %+v, want ended, no edge, next seq 1", st)
	}
	// The ended stream makes room for the new one.
	se, data = b2.segment(KindInit, 0, c.Now(), 0)
	if rec := originPut(t, o, se, data); rec.Code != http.StatusCreated {
		t.Errorf("new stream after the old one ended: %d %s", rec.Code, rec.Body)
	}
	if n := o.Counts(); n[ResultAccepted] != 3 || n[ResultStreamLimit] != 1 || n[ResultMissingInit] != 1 {
		t.Errorf("counts %v", n)
	}
}

// TestOriginServing: segment names, caching and unknown paths.
func TestOriginServing(t *testing.T) {
	o := newTestOrigin(t, nil)
	b := newBroadcaster(t)
	se, data := b.segment(KindInit, 3, time.Now(), 0)
	originPut(t, o, se, data)
	se, data = b.segment(KindMedia, 3, time.Now(), time.Second)
	if rec := originPut(t, o, se, data); rec.Code != http.StatusCreated {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	for _, c := range []struct {
		path   string
		status int
		want   string
	}{
		{"/live/" + b.id.String() + "/3.m4s", 200, string(data)},
		{"/live/" + b.id.String() + "/init-3.mp4", 200, "init segment 3"},
		{"/live/" + b.id.String() + "/03.m4s", 404, "want index.m3u8"},
		{"/live/" + b.id.String() + "/4.m4s", 404, "not in the stream's window"},
		{"/live/" + b.id.String() + "/index.m3u8", 200, "#EXT-X-MEDIA-SEQUENCE:3\n"},
		{"/live/" + b.id.String(), 404, "not found"}, // the watch page is the mounting server's
		{"/live/" + b.id.String() + "/", 404, "not found"},
		{"/live/" + b.id.String() + "/3.m4s/x", 404, "not found"},
		{"/api/live/" + b.id.String(), 200, `"state":"live"`},
		{"/api/live/", 200, b.id.String()},
		{"/api/live", 200, b.id.String()},
		{"/api/live/" + b.id.String() + "/x", 404, "not found"},
		{"/elsewhere", 404, "not found"},
		{"/live//3.m4s", 404, "not found"}, // no redirect to a cleaned path
		{"/live/" + b.id.String() + "/../" + b.id.String() + "/3.m4s", 404, "not found"},
		{"/live/" + strings.ToUpper(b.id.String()) + "/index.m3u8", 404, "not lowercase base32"},
		{"/api/live/nope", 404, "stream id"},
	} {
		rec := httptest.NewRecorder()
		o.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("GET %s: %d %.200q, want %d with %q", c.path, rec.Code, rec.Body, c.status, c.want)
		}
	}
}

// TestOriginRoutes: methods no route takes answer 405 JSON with Allow; uploads check the token
// before the path, and a path no upload route takes answers 404 with the result label.
func TestOriginRoutes(t *testing.T) {
	o := newTestOrigin(t, nil)
	id := newBroadcaster(t).id.String()
	for _, c := range []struct {
		method, path, auth string
		status             int
		want, allow        string
	}{
		{http.MethodDelete, "/live/" + id + "/index.m3u8", "", 405, `{"error":"method not allowed"}`, "GET, HEAD, PUT"},
		{http.MethodPost, "/api/live", "", 405, `{"error":"method not allowed"}`, "GET, HEAD"},
		{http.MethodPut, "/api/live/" + id, "", 405, `{"error":"method not allowed"}`, "GET, HEAD"},
		{http.MethodPut, "/live/" + id + "/nope/1", "", 401, "ingest token", ""},
		{http.MethodPut, "/live/" + id + "/nope/1", originToken, 404, `"result":"malformed"`, ""},
		{http.MethodPut, "/live/" + id, originToken, 404, "upload to /live/{stream}/init/{seq}", ""},
		{http.MethodPut, "/live/" + id + "/media/01", originToken, 400, "want a decimal number", ""},
		{http.MethodPut, "/live/nope/media/1", originToken, 400, "stream id", ""},
		{http.MethodPut, "/live/" + id + "/end", originToken, 400, "signed end's JSON", ""},
	} {
		req := httptest.NewRequest(c.method, c.path, strings.NewReader("{"))
		if c.auth != "" {
			req.Header.Set("Authorization", "Bearer "+c.auth)
		}
		rec := httptest.NewRecorder()
		o.ServeHTTP(rec, req)
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.want) || rec.Header().Get("Allow") != c.allow ||
			!strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: %d %v %.200q, want %d with %q, Allow %q", c.method, c.path, rec.Code, rec.Header(), rec.Body, c.status, c.want, c.allow)
		}
	}
	if n := o.Counts(); n[ResultUnauthorized] != 1 || n[ResultMalformed] != 5 {
		t.Errorf("counts %v", n)
	}
}
