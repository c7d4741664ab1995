package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmgate/swarmgate/live"
)

func TestLiveKeygen(t *testing.T) {
	clearEnv(t)
	path := filepath.Join(t.TempDir(), "stream.key")
	code, out, errOut := run(t, "live", "keygen", "--out", path)
	if code != exitOK {
		t.Fatalf("keygen: exit %d, stderr %q", code, errOut)
	}
	id, err := live.ParseStreamID(strings.TrimSpace(out))
	if err != nil || out != id.String()+"\n" {
		t.Fatalf("keygen printed %q, want the stream id alone: %v", out, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	priv, err := live.ReadKeyFile(path)
	if err != nil || live.StreamIDOfKey(priv) != id {
		t.Fatalf("the key file does not hold the printed stream's key: %v", err)
	}
	if !strings.Contains(errOut, path) {
		t.Errorf("keygen does not say where the key went: %q", errOut)
	}

	// live id gives the same id back from the file.
	if code, out, errOut := run(t, "live", "id", "--key", path); code != exitOK || out != id.String()+"\n" {
		t.Errorf("live id: exit %d, %q (stderr %q), want %s", code, out, errOut, id)
	}

	// A second keygen on the same file fails and leaves the key alone.
	before, _ := os.ReadFile(path)
	code, out, errOut = run(t, "live", "keygen", "--out", path)
	if code != exitFailure || out != "" || !strings.Contains(errOut, "refusing to overwrite") {
		t.Errorf("keygen over an existing key: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("the refused keygen changed the key file")
	}

	// Two keygens make two streams.
	other := filepath.Join(t.TempDir(), "other.key")
	if _, out2, _ := run(t, "live", "keygen", "--out", other); strings.TrimSpace(out2) == id.String() {
		t.Error("two keygens printed the same stream id")
	}
}

func TestLiveErrors(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.key")
	os.WriteFile(garbage, []byte("not a key\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no subcommand", []string{"live"}, exitUsage, "needs a subcommand"},
		{"unknown subcommand", []string{"live", "frobnicate"}, exitUsage, `unknown live subcommand "frobnicate"`},
		{"keygen without --out", []string{"live", "keygen"}, exitUsage, "needs --out FILE"},
		{"keygen --out without a value", []string{"live", "keygen", "--out"}, exitUsage, "flag needs an argument"},
		{"keygen with an argument", []string{"live", "keygen", "--out", filepath.Join(dir, "a.key"), "extra"}, exitUsage, "takes no arguments"},
		{"keygen unknown flag", []string{"live", "keygen", "--force"}, exitUsage, "force"},
		{"id without --key", []string{"live", "id"}, exitUsage, "needs --key FILE"},
		{"keygen into a missing folder", []string{"live", "keygen", "--out", filepath.Join(dir, "no", "such", "dir.key")}, exitFailure, "creating key file"},
		{"id of a missing file", []string{"live", "id", "--key", filepath.Join(dir, "nope.key")}, exitFailure, "does not exist: open " + filepath.Join(dir, "nope.key") + ": no such file or directory (make one with `swarmgate live keygen --out " + filepath.Join(dir, "nope.key") + "`)"},
		{"id of a non-key", []string{"live", "id", "--key", garbage}, exitFailure, "no PEM block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("Run(%q): exit %d, stderr %q; want exit %d and %q", tc.args, code, errOut, tc.code, tc.want)
			}
			if out != "" {
				t.Errorf("Run(%q) printed %q on stdout", tc.args, out)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "a.key")); err == nil {
		t.Error("keygen with a usage error still wrote a key")
	}
}

func TestLiveHelp(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{{"live", "help"}, {"live", "--help"}, {"live", "keygen", "--help"}, {"live", "id", "-h"}} {
		code, out, errOut := run(t, args...)
		if code != exitOK || errOut != "" || !strings.Contains(out, "swarmgate live") {
			t.Errorf("Run(%q): exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	if code, out, _ := run(t, "help"); code != exitOK || !strings.Contains(out, "live keygen") || !strings.Contains(out, "live id") {
		t.Errorf("the main usage does not list live keygen and live id: %q", out)
	}
}

// TestLiveFlagNames: live words its stream limit by the config field; the CLI adds the flag.
func TestLiveFlagNames(t *testing.T) {
	cfg := live.DefaultOriginConfig()
	cfg.MaxStreams = 1
	o, err := live.NewOrigin(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	status := func() live.RelayStatus { return live.RelayStatus{} }
	for i := range 2 {
		priv, err := live.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		err = o.Follow(live.StreamIDOfKey(priv), status)
		if i == 0 {
			continue
		}
		if msg := liveFlagNames(fmt.Errorf("relay: %w", err)).Error(); !strings.Contains(msg, "limit of 1 live streams") || !strings.Contains(msg, "--max-live-streams") {
			t.Errorf("stream limit: %q", msg)
		}
	}
}
