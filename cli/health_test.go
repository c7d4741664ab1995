package cli

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
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

// TestHealthConfigFile: with no --url, health asks the port serve would listen on, which may come
// from a config file named by --config or SWARMGATE_CONFIG, under the environment.
func TestHealthConfigFile(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	conf := writeConfig(t, "data-dir = /var/lib/swarmgate\nhttp-addr = "+srv.Listener.Addr().String()+"\n")
	t.Setenv(envName("http-addr"), "")
	t.Setenv(envName(configFlag), "")

	var out, errOut bytes.Buffer
	if code := Run([]string{"health", "--config", conf}, &out, &errOut); code != exitOK {
		t.Fatalf("--config: exit %d, stderr %q", code, errOut.String())
	}
	t.Setenv(envName(configFlag), conf)
	if code := Run([]string{"health"}, &out, &errOut); code != exitOK {
		t.Fatalf("SWARMGATE_CONFIG: exit %d, stderr %q", code, errOut.String())
	}
	// The environment wins over the file, as it does for serve: nothing listens on port 1.
	t.Setenv(envName("http-addr"), "127.0.0.1:1")
	if code := Run([]string{"health", "--timeout", "2s"}, &out, &errOut); code != exitFailure {
		t.Fatalf("SWARMGATE_HTTP_ADDR over the file: exit %d, want %d", code, exitFailure)
	}
	t.Setenv(envName("http-addr"), "")

	bad := writeConfig(t, "http-adr = :9090\n")
	errOut.Reset()
	if code := Run([]string{"health", "--config", bad}, &out, &errOut); code != exitUsage {
		t.Fatalf("bad config: exit %d, want %d", code, exitUsage)
	}
	if !strings.Contains(errOut.String(), bad+":1:") || !strings.Contains(errOut.String(), "http-adr") {
		t.Errorf("bad config: stderr %q does not name the file, line and setting", errOut.String())
	}
}
