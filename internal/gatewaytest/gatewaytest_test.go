package gatewaytest

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/swarmgate/swarmgate/gateway"
)

// TestMain fails the package if a goroutine outlives its tests: Close must leave nothing of the
// gateway running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// get is GET url without keep-alive (no idle connection for goleak to find).
func get(url string) (*http.Response, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	return c.Get(url)
}

func TestNewServesUntilClosed(t *testing.T) {
	s := New(t, quiet, func(c *gateway.Config) { c.MaxTorrents = 7 })
	res, err := get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %s", res.Status)
	}
	if s.Gateway.BTAddr() == nil {
		t.Error("no BitTorrent TCP listener")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if res, err := get(s.URL + "/healthz"); err == nil {
		res.Body.Close()
		t.Fatalf("closed gateway still answers: %s", res.Status)
	}
}

// Config keeps everything on loopback; a test changing one field keeps the rest.
func TestConfigIsLoopbackOnly(t *testing.T) {
	c := Config("dir")
	if c.HTTPAddr != "127.0.0.1:0" || c.BTHost != "127.0.0.1" || c.BTPort != 0 || !c.NoDHT || !c.NoUPnP || !c.LoopbackWebRTC || c.DataDir != "dir" {
		t.Errorf("Config is not loopback-only: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Config does not validate: %v", err)
	}
}

// A gateway Start gave a temporary folder to leaves nothing behind, whether it starts or not.
func TestStartRemovesItsTempDir(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where os.MkdirTemp("", …) makes its folders
	s, err := Start(Config(""), quiet)
	if err != nil {
		t.Fatal(err)
	}
	dir := s.tempDir
	if filepath.Dir(dir) != tmp {
		t.Fatalf("data folder %s is not in TMPDIR %s", dir, tmp)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("data folder while serving: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("data folder %s after Close: %v, want it gone", dir, err)
	}

	bad := Config("")
	bad.HTTPAddr = "127.0.0.1:-1"
	if s, err := Start(bad, quiet); err == nil {
		s.Close()
		t.Fatal("Start with a bad HTTPAddr succeeded")
	}
	if left, err := os.ReadDir(tmp); err != nil || len(left) != 0 {
		t.Errorf("TMPDIR after a Close and a failed Start: %v (%v), want it empty", left, err)
	}
}
