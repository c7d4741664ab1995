package cli

import (
	"errors"
	"flag"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/swarmgate/swarmgate/gateway"
)

// TestConfigFlagsFindsEveryConfigFlag: every flag of serve except the handful that are not
// Config fields maps back to its field, so a new flag's errors are worded with its name.
func TestConfigFlagsFindsEveryConfigFlag(t *testing.T) {
	o := options{cfg: gateway.DefaultConfig()}
	fs := newFlagSet("serve", &o, io.Discard)
	fields := configFlags(fs, &o.cfg)
	notConfig := map[string]bool{configFlag: true, "log-level": true, "log-format": true, "allow-infohash-file": true}
	mapped := map[string]bool{}
	for _, name := range fields {
		mapped[name] = true
	}
	for name := range notConfig {
		if mapped[name] {
			t.Errorf("--%s maps to a Config field", name)
		}
	}
	var count int
	for _, name := range flagNames(fs) {
		if notConfig[name] {
			continue
		}
		count++
		if !mapped[name] {
			t.Errorf("--%s sets no Config field that configFlags finds", name)
		}
	}
	if len(fields) != count {
		t.Errorf("%d fields mapped for %d flags: %v", len(fields), count, fields)
	}
	for field, name := range map[string]string{"HTTPAddr": "http-addr", "CacheSize": "cache-size", "PublicIPs": "public-ip",
		"ICEServers": "ice-server", "UploadRate": "upload-rate", "Demo": "demo"} {
		if fields[field] != name {
			t.Errorf("%s maps to %q, want %q", field, fields[field], name)
		}
	}
}

// TestEveryConfigProblemOnItsOwnLine: one run reports every wrong setting, each by its flag,
// including a flag another one's message mentions; quoted values stay as typed.
func TestEveryConfigProblemOnItsOwnLine(t *testing.T) {
	clearEnv(t)
	code, out, errOut := run(t, safeArgs(t, "serve", "--idle-timeout", "-1h", "--allow-add", "token",
		"--max-webrtc-peers", "0", "--public-url", "ftp://CacheSize")...)
	if code != exitUsage || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	want := []string{
		`swarmgate: --public-url "ftp://CacheSize": want an absolute http(s) URL`,
		"swarmgate: --allow-add token: needs --admin-token to be set",
		"swarmgate: --max-webrtc-peers 0: must be at least 1",
		"swarmgate: --idle-timeout -1h0m0s: must be 0 (never) or positive",
	}
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("stderr has %d lines, want %d:\n%s", len(lines), len(want), errOut)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q, want it to start with %q", i+1, lines[i], w)
		}
	}
}

// TestPortInUseNamesTheFlag: what New meets (a port in use) is worded with the flag too, and exits 1.
func TestPortInUseNamesTheFlag(t *testing.T) {
	clearEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, _, errOut := run(t, safeArgs(t, "serve", "--http-addr", ln.Addr().String())...)
	if code != exitFailure || !strings.HasPrefix(errOut, "swarmgate: --http-addr "+ln.Addr().String()+": ") ||
		!strings.Contains(errOut, "in use") {
		t.Errorf("exit %d, stderr %q; want %d and --http-addr named", code, errOut, exitFailure)
	}
}

func TestInFlagWordsKeepsIdentity(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.CacheSize = -1
	err := inFlagWords(cfg.Validate(), map[string]string{"CacheSize": "cache-size"})
	var fe *gateway.FieldError
	if !errors.Is(err, gateway.ErrInvalidConfig) || !errors.As(err, &fe) || fe.Field != "CacheSize" {
		t.Errorf("%v lost what it matched", err)
	}
}

func flagNames(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}
