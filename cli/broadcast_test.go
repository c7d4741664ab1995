package cli

import (
	"crypto/ed25519"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmgate/swarmgate/live"
)

// TestBroadcastUsageErrors: every mistake on broadcast's command line exits 2 and says what is
// wrong, before anything runs.
func TestBroadcastUsageErrors(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	key, _ := writeTestKey(t, dir)
	input := filepath.Join(dir, "in.mp4")
	if err := os.WriteFile(input, []byte("not really a video"), 0o644); err != nil {
		t.Fatal(err)
	}
	ok := []string{"--gateway", "http://127.0.0.1:1", "--token", "tok"}
	with := func(extra ...string) []string {
		return append(append([]string{"broadcast"}, ok...), extra...)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no input", with("--key", key), "needs an INPUT"},
		{"two inputs", with("--key", key, input, input), "takes one INPUT"},
		{"no gateway", []string{"broadcast", "--token", "tok", "--key", key, input}, "needs --gateway"},
		{"gateway not a URL", []string{"broadcast", "--gateway", "tv.example.org", "--token", "tok", "--key", key, input}, "want an http(s) URL"},
		{"no token", []string{"broadcast", "--gateway", "http://127.0.0.1:1", "--key", key, input}, "needs --token"},
		{"no key", with(input), "needs --key"},
		{"segment too short", with("--key", key, "--segment-seconds", "0.1", input), "--segment-seconds"},
		{"segment not a number", with("--key", key, "--segment-seconds", "x", input), "segment-seconds"},
		{"unknown flag", with("--key", key, "--bitrate", "1M", input), "bitrate"},
		{"input missing", with("--key", key, filepath.Join(dir, "nope.mp4")), "nope.mp4"},
		{"test source and input", with("--test-source", input), "takes no INPUT"},
		{"test source looped", with("--test-source", "--loop"), "--loop is for an INPUT"},
		{"negative duration", with("--key", key, "--duration", "-1s", input), "--duration"},
		{"duration not one", with("--key", key, "--duration", "ten", input), "duration"},
	} {
		code, out, errOut := run(t, c.args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 saying %q", c.name, code, out, errOut, c.want)
		}
	}

	// The environment twins count: the gateway from SWARMGATE_GATEWAY, the token from
	// SWARMGATE_INGEST_TOKEN (the gateway's own variable), so only the key is missing.
	t.Setenv("SWARMGATE_GATEWAY", "http://127.0.0.1:1")
	t.Setenv("SWARMGATE_INGEST_TOKEN", "tok")
	if code, _, errOut := run(t, "broadcast", input); code != exitUsage || !strings.Contains(errOut, "needs --key") {
		t.Errorf("with env twins: exit %d, stderr %q; want only --key missing", code, errOut)
	}

	// No ffmpeg: a plain failure (exit 1) saying how to install it.
	code, _, errOut := run(t, "broadcast", "--key", key, "--ffmpeg", filepath.Join(dir, "no-ffmpeg"), input)
	if code != exitFailure || !strings.Contains(errOut, "apt-get install ffmpeg") {
		t.Errorf("without ffmpeg: exit %d, stderr %q", code, errOut)
	}
	if code, out, errOut := run(t, "broadcast", "--help"); code != exitOK || errOut != "" || !strings.Contains(out, "SWARMGATE_SEGMENT_SECONDS") {
		t.Errorf("--help: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestBroadcastRun: the command sends a real (short) file to a live origin and exits 0 when
// ffmpeg reaches its end, having printed the stream id and the watch URL.
func TestBroadcastRun(t *testing.T) {
	clearEnv(t)
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (apt-get install ffmpeg)")
	}
	dir := t.TempDir()
	input := filepath.Join(dir, "in.mp4")
	mk := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25", "-f", "lavfi", "-i", "sine", "-t", "2",
		"-c:v", "libx264", "-c:a", "aac", "-pix_fmt", "yuv420p", input)
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("making the input: %v: %s", err, out)
	}
	key, priv := writeTestKey(t, dir)
	const token = "cli-broadcast-token-0123456789"
	origin := newTestOrigin(t, token)
	srv := httptest.NewServer(origin)
	defer srv.Close()

	t.Setenv("SWARMGATE_INGEST_TOKEN", token)
	code, out, errOut := run(t, "broadcast", "--gateway", srv.URL, "--key", key, "--log-level", "warn", input)
	id := live.StreamIDOfKey(priv).String()
	if code != exitOK || !strings.Contains(out, id) || !strings.Contains(out, srv.URL+"/live/"+id) {
		t.Fatalf("broadcast: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if n := origin.Counts(); n[live.ResultAccepted] < 3 || n[live.ResultAccepted] != sum(n) {
		t.Errorf("origin counts %v, want ≥ 3 accepted (init + 2 media) and nothing refused", n)
	}
}

// TestBroadcastTestSource: one command, no key file and no input, broadcasts ffmpeg's test
// pattern for the given duration under a throwaway key, printing its stream id and watch URL.
func TestBroadcastTestSource(t *testing.T) {
	clearEnv(t)
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (apt-get install ffmpeg)")
	}
	const token = "cli-broadcast-token-0123456789"
	origin := newTestOrigin(t, token)
	srv := httptest.NewServer(origin)
	defer srv.Close()
	code, out, errOut := run(t, "broadcast", "--gateway", srv.URL, "--token", token, "--test-source", "--duration", "3s")
	if code != exitOK || !strings.Contains(out, srv.URL+"/live/") || !strings.Contains(errOut, "throwaway key") {
		t.Fatalf("broadcast: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	st := origin.Statuses(srv.URL)
	if len(st) != 1 || !strings.Contains(out, st[0].Stream.String()) || st[0].Window.Media < 2 || st[0].Rejected != 0 {
		t.Errorf("origin holds %+v; stdout %q", st, out)
	}
}

func sum(m map[string]uint64) (n uint64) {
	for _, v := range m {
		n += v
	}
	return n
}

// writeTestKey writes a new broadcaster key to dir/stream.key.
func writeTestKey(t *testing.T, dir string) (string, ed25519.PrivateKey) {
	t.Helper()
	key := filepath.Join(dir, "stream.key")
	priv, err := live.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := live.WriteKeyFile(key, priv); err != nil {
		t.Fatal(err)
	}
	return key, priv
}

// newTestOrigin is a live origin taking uploads with token.
func newTestOrigin(t *testing.T, token string) *live.Origin {
	t.Helper()
	cfg := live.DefaultOriginConfig()
	cfg.IngestToken = token
	o, err := live.NewOrigin(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
