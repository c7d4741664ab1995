package cli

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmgate/swarmgate/gateway"
	"github.com/swarmgate/swarmgate/internal/gatewaytest"
)

// TestSeedIntoRunningGateway: `swarmgate seed --gateway URL` seeds a file into a gateway that runs
// already (the README's demo leaves one on :8080), which then streams it; no token or a wrong one
// is a clear error.
func TestSeedIntoRunningGateway(t *testing.T) {
	clearEnv(t)
	const token = "seed-into-admin-token-0123456789"
	srv := gatewaytest.New(t, nil, func(c *gateway.Config) { c.AdminToken = token })
	file := filepath.Join(t.TempDir(), "talk.mp4")
	content := bytes.Repeat([]byte("a talk worth seeding "), 20000)
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}

	code, _, errOut := run(t, "seed", "--gateway", srv.URL, file)
	if code != exitUsage || !strings.Contains(errOut, "admin token") {
		t.Errorf("without a token: exit %d, %q", code, errOut)
	}
	code, _, errOut = run(t, "seed", "--gateway", srv.URL, "--token", "wrong-token-wrong-token", file)
	if code != exitFailure || !strings.Contains(errOut, "wrong admin token") {
		t.Errorf("a wrong token: exit %d, %q", code, errOut)
	}
	t.Setenv(envPrefix+"ADMIN_TOKEN", token)
	code, out, errOut := run(t, "seed", "--gateway", srv.URL, file)
	if code != exitOK || !strings.Contains(out, "magnet:?xt=urn:btih:") || !strings.Contains(out, srv.URL+"/watch/") {
		t.Fatalf("seed --gateway: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	i := strings.Index(out, "/watch/")
	ih := out[i+len("/watch/") : i+len("/watch/")+40]
	res, err := http.Get(srv.URL + "/stream/" + ih + "/0")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !bytes.Equal(got, content) {
		t.Errorf("the gateway streams %d bytes, not the seeded file", len(got))
	}
	if code, _, errOut := run(t, "seed", "--gateway", "localhost:8080", file); code != exitUsage || !strings.Contains(errOut, "http(s) URL") {
		t.Errorf("a gateway without scheme: exit %d, %q", code, errOut)
	}
}
