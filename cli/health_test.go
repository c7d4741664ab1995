package cli

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func TestHealth(t *testing.T) {
	var draining atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	var out, errOut bytes.Buffer
	if code := Run([]string{"health", "--url", srv.URL}, &out, &errOut); code != exitOK {
		t.Fatalf("ready gateway: exit %d, stderr %q", code, errOut.String())
	}
	draining.Store(true)
	if code := Run([]string{"health", "--url", srv.URL}, &out, &errOut); code != exitFailure {
		t.Fatalf("draining gateway: exit %d, want %d", code, exitFailure)
	}
	srv.Close()
	if code := Run([]string{"health", "--url", srv.URL}, &out, &errOut); code != exitFailure {
		t.Fatalf("gateway down: exit %d, want %d", code, exitFailure)
	}
	if code := Run([]string{"health", "extra"}, &out, &errOut); code != exitUsage {
		t.Fatalf("bad usage: exit %d, want %d", code, exitUsage)
	}
}

func TestDefaultHealthURL(t *testing.T) {
	for in, want := range map[string]string{
		"":               "http://127.0.0.1:8080/readyz",
		":8080":          "http://127.0.0.1:8080/readyz",
		":9090":          "http://127.0.0.1:9090/readyz",
		"0.0.0.0:9090":   "http://127.0.0.1:9090/readyz",
		"[::]:9090":      "http://[::1]:9090/readyz",
		"10.0.0.5:9090":  "http://10.0.0.5:9090/readyz",
		"localhost:7000": "http://localhost:7000/readyz",
		"nonsense":       "http://127.0.0.1:8080/readyz",
	} {
		if got := defaultHealthURL(in); got != want {
			t.Errorf("defaultHealthURL(%q) = %q, want %q", in, got, want)
		}
	}
}
