package gateway

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer holds what a JSON slog handler wrote, one record a line, for a test to read back.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// logRecord is one record: its line as written, and its fields.
type logRecord struct {
	line   string
	fields map[string]any
}

func (r logRecord) str(key string) string { s, _ := r.fields[key].(string); return s }

// newLogBuffer is a logger at level writing JSON into a logBuffer.
func newLogBuffer(level slog.Level) (*logBuffer, *slog.Logger) {
	b := &logBuffer{}
	return b, slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: level}))
}

func (b *logBuffer) records(t testing.TB) []logRecord {
	t.Helper()
	b.mu.Lock()
	text := b.buf.String()
	b.mu.Unlock()
	var out []logRecord
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if line == "" {
			continue
		}
		r := logRecord{line: line}
		if err := json.Unmarshal([]byte(line), &r.fields); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// requests are the access log's records of method and path.
func (b *logBuffer) requests(t testing.TB, method, path string) []logRecord {
	t.Helper()
	var out []logRecord
	for _, r := range b.records(t) {
		if r.str("component") == "http" && r.str("msg") == "request" && r.str("method") == method && r.str("path") == path {
			out = append(out, r)
		}
	}
	return out
}

// request waits for the one access log record of method and path (it is written once the
// answer is out, so a client can be done before it is) and returns it.
func (b *logBuffer) request(t testing.TB, method, path string) logRecord {
	t.Helper()
	var got []logRecord
	waitFor(t, 10*time.Second, "the access log record of "+method+" "+path, func() bool {
		got = b.requests(t, method, path)
		return len(got) > 0
	})
	if len(got) != 1 {
		t.Fatalf("%d access log records of %s, want 1: %v", len(got), path, got)
	}
	return got[0]
}

// checkAccess checks the fields of an access log record; a zero want field is not checked.
func checkAccess(t testing.TB, r logRecord, want map[string]any) {
	t.Helper()
	for k, v := range want {
		got := r.fields[k]
		if n, ok := v.(int); ok {
			v = float64(n) // JSON numbers
		}
		if got != v {
			t.Errorf("%s: %s = %v, want %v", r.line, k, got, v)
		}
	}
	for _, k := range []string{"duration", "bytes", "ip", "route", "method", "status"} {
		if _, ok := r.fields[k]; !ok {
			t.Errorf("%s: no %s", r.line, k)
		}
	}
}

// TestAccessLog: one record per request, with the route pattern, status, bytes, Range and the
// client IP a trusted proxy names; page views and errors at info, stream reads at debug, 5xx at
// warn, a websocket once at its upgrade.
func TestAccessLog(t *testing.T) {
	logs, log := newLogBuffer(slog.LevelDebug)
	r := startGatewayLog(t, func(c *Config) {
		c.Demo = true
		c.TrustedProxies = []string{"127.0.0.1/32"}
		c.MetadataWait = 50 * time.Millisecond // a magnet without peers answers 503 soon
	}, log)
	ih := demoInfoHash(t, r)

	page := "/watch/" + ih
	if res := r.get(t, page, map[string]string{"X-Forwarded-For": "203.0.113.7", "User-Agent": "test-agent/1"}); res.status != http.StatusOK {
		t.Fatalf("GET %s: %d", page, res.status)
	}
	checkAccess(t, logs.request(t, "GET", page), map[string]any{
		"level": "INFO", "method": "GET", "route": "/watch/:ih", "status": 200, "ip": "203.0.113.7", "ua": "test-agent/1",
	})

	stream := "/stream/" + ih + "/0"
	res := r.get(t, stream, map[string]string{"Range": "bytes=100-1123"})
	if res.status != http.StatusPartialContent || len(res.body) != 1024 {
		t.Fatalf("GET %s with a Range: %d, %d bytes", stream, res.status, len(res.body))
	}
	checkAccess(t, logs.request(t, "GET", stream), map[string]any{
		"level": "DEBUG", "method": "GET", "route": "/stream/:ih/:file", "status": 206, "bytes": 1024,
		"range": "bytes=100-1123", "ip": "127.0.0.1",
	})

	if res := r.get(t, "/no/such/page", nil); res.status != http.StatusNotFound {
		t.Fatalf("GET /no/such/page: %d", res.status)
	}
	checkAccess(t, logs.request(t, "GET", "/no/such/page"), map[string]any{"level": "INFO", "route": "unmatched", "status": 404})
	if rec := logs.request(t, "GET", "/no/such/page"); rec.fields["range"] != nil {
		t.Errorf("%s: a range field without a Range header", rec.line)
	}

	magnet := someInfoHash(7)
	if res := r.post(t, nil, map[string]string{"infohash": magnet}); res.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", res.status, res.body)
	}
	checkAccess(t, logs.request(t, "POST", "/api/torrents"), map[string]any{"level": "INFO", "method": "POST", "status": 201})
	if res := r.get(t, "/stream/"+magnet+"/0", nil); res.status != http.StatusServiceUnavailable {
		t.Fatalf("GET a stream without metadata: %d %s", res.status, res.body)
	}
	checkAccess(t, logs.request(t, "GET", "/stream/"+magnet+"/0"), map[string]any{"level": "WARN", "status": 503})

	tr := dialTracker(t, r, nil)
	tr.announceOK(t, ih)
	checkAccess(t, logs.request(t, "GET", "/announce"), map[string]any{"level": "INFO", "route": "/announce", "status": 101})
	tr.announceOK(t, ih) // messages on the socket are not requests
	if n := len(logs.requests(t, "GET", "/announce")); n != 1 {
		t.Errorf("%d records of one websocket, want 1", n)
	}

	for _, rec := range logs.records(t) {
		if n := strings.Count(rec.line, `"component":`); n > 1 {
			t.Errorf("component %d times: %s", n, rec.line)
		}
	}
}

// TestAccessLogLevels: which requests each --access-log setting logs at info.
func TestAccessLogLevels(t *testing.T) {
	const ih = "/stream/0123456789abcdef0123456789abcdef01234567/0"
	for _, tc := range []struct {
		mode, method, route, path string
		status                    int
		want                      slog.Level
	}{
		{AccessLogOn, "GET", "/stream/:ih/:file", ih, 206, slog.LevelDebug},
		{AccessLogOn, "GET", "/webseed/:ih/*", "/webseed/x/a.mp4", 200, slog.LevelDebug},
		{AccessLogOn, "GET", "/live/*", "/live/abc/index.m3u8", 200, slog.LevelDebug},
		{AccessLogOn, "PUT", "/live/*", "/live/abc/media/7", 201, slog.LevelDebug},
		{AccessLogOn, "GET", "/live/*", "/live/abc", 200, slog.LevelInfo},
		{AccessLogOn, "GET", "/live/*", "/live/abc/embed", 200, slog.LevelInfo},
		{AccessLogOn, "GET", "/api/torrents/:ih", "/api/torrents/x", 200, slog.LevelDebug},
		{AccessLogOn, "GET", "/healthz", "/healthz", 200, slog.LevelDebug},
		{AccessLogOn, "GET", "/", "/", 200, slog.LevelInfo},
		{AccessLogOn, "DELETE", "/api/torrents/:ih", "/api/torrents/x", 204, slog.LevelInfo},
		{AccessLogOn, "GET", "/stream/:ih/:file", ih, 416, slog.LevelInfo},
		{AccessLogOn, "GET", "/stream/:ih/:file", ih, 500, slog.LevelWarn},
		{AccessLogAll, "GET", "/stream/:ih/:file", ih, 206, slog.LevelInfo},
		{AccessLogAll, "GET", "/stream/:ih/:file", ih, 503, slog.LevelWarn},
	} {
		g := &Gateway{cfg: Config{AccessLog: tc.mode}}
		req, _ := http.NewRequest(tc.method, "http://gw"+tc.path, nil)
		if got := g.accessLevel(req, tc.route, tc.status); got != tc.want {
			t.Errorf("%s: %s %s %d: %v, want %v", tc.mode, tc.method, tc.path, tc.status, got, tc.want)
		}
	}
}

// TestAccessLogOff: no request records, the gateway answers as before.
func TestAccessLogOff(t *testing.T) {
	logs, log := newLogBuffer(slog.LevelDebug)
	r := startGatewayLog(t, func(c *Config) { c.AccessLog = AccessLogOff }, log)
	if res := r.get(t, "/no/such/page", nil); res.status != http.StatusNotFound {
		t.Fatalf("GET: %d", res.status)
	}
	r.stop()
	for _, rec := range logs.records(t) {
		if rec.str("component") == "http" {
			t.Errorf("access log off, yet: %s", rec.line)
		}
	}
}

func TestAccessLogSettingValidated(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AccessLog = "loud"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "AccessLog") {
		t.Errorf("access-log loud: %v, want an error naming AccessLog", err)
	}
}
