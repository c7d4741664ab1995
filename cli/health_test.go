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
