package cli

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmgate/swarmgate/gateway"
)

// clearEnv hides any SWARMGATE_* variable of the environment the tests run in.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, envPrefix) {
			t.Setenv(name, "")
		}
	}
}

// run calls Run with loopback-only, no-network defaults in front of args (later flags win), so
// that a setting Run wrongly accepted could not bind public ports; it fails the test if Run does
// not return promptly.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- Run(args, &out, &errb) }()
	select {
	case code = <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("Run(%q) did not return: it is serving", args)
	}
	return code, out.String(), errb.String()
}

func safeArgs(t *testing.T, cmd string, extra ...string) []string {
	return append([]string{cmd, "--http-addr", "127.0.0.1:0", "--bt-port", "0", "--no-dht", "--no-upnp",
		"--data-dir", t.TempDir()}, extra...)
}

func TestVersion(t *testing.T) {
	clearEnv(t)
	code, out, _ := run(t, "version")
	if code != exitOK {
		t.Errorf("version: exit %d", code)
	}
	if !strings.HasPrefix(out, "swarmgate ") || strings.TrimSpace(strings.TrimPrefix(out, "swarmgate ")) == "" {
		t.Errorf("version printed %q", out)
	}
	old := Version
	Version = "v9.9.9-test"
	defer func() { Version = old }()
	if _, out, _ := run(t, "version"); strings.TrimSpace(out) != "swarmgate v9.9.9-test" {
		t.Errorf("version with -X Version: %q", out)
	}
}

func TestUsageErrors(t *testing.T) {
	clearEnv(t)
	missing := filepath.Join(t.TempDir(), "does", "not", "exist")
	for _, tc := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", safeArgs(t, "serve", "--no-such-flag"), "no-such-flag"},
		{"unknown flag, no command", []string{"--no-such-flag"}, "no-such-flag"},
		{"bt-port", safeArgs(t, "serve", "--bt-port", "70000"), "bt-port"},
		{"bt-port negative", safeArgs(t, "serve", "--bt-port", "-1"), "bt-port"},
		{"bt-port not a number", safeArgs(t, "serve", "--bt-port", "many"), "bt-port"},
		{"http-addr", safeArgs(t, "serve", "--http-addr", "nonsense"), "http-addr"},
		{"log-level", safeArgs(t, "serve", "--log-level", "loud"), "log-level"},
		{"log-format", safeArgs(t, "serve", "--log-format", "xml"), "log-format"},
		{"access-log", safeArgs(t, "serve", "--access-log", "loud"), "access-log"},
		{"public-ip", safeArgs(t, "serve", "--public-ip", "1.2.3"), "public-ip"},
		{"ice-server scheme", safeArgs(t, "serve", "--ice-server", "http://x"), "ice-server"},
		{"ice-server turn without credentials", safeArgs(t, "serve", "--ice-server", "turn:host:3478"), "ice-server"},
		{"public-url", safeArgs(t, "serve", "--public-url", "ftp://x"), "public-url"},
		{"public-url relative", safeArgs(t, "serve", "--public-url", "/tv"), "public-url"},
		{"webrtc-udp-port", safeArgs(t, "serve", "--webrtc-udp-port", "65536"), "webrtc-udp-port"},
		{"cache-size negative", safeArgs(t, "serve", "--cache-size", "-1"), "cache-size"},
		{"cache-size not a size", safeArgs(t, "serve", "--cache-size", "lots"), "cache-size"},
		{"cache-size too small", safeArgs(t, "serve", "--cache-size", "10"), "cache-size 10: at least 1M"},
		{"idle-timeout negative", safeArgs(t, "serve", "--idle-timeout", "-1h"), "idle-timeout -1h0m0s: must be 0 (never) or positive"},
		{"idle-timeout not a duration", safeArgs(t, "serve", "--idle-timeout", "soon"), "idle-timeout"},
		{"serve extra arg", safeArgs(t, "serve", "extra-arg"), "extra-arg"},
		{"seed without path", safeArgs(t, "seed"), "PATH"},
		{"seed missing path", safeArgs(t, "seed", missing), missing},
		{"seed bad flag value", safeArgs(t, "seed", "--log-level", "loud", t.TempDir()), "log-level"},
	} {
		t.Run(tc.name, func(t *testing.T) { expectUsageError(t, tc.args, tc.want) })
	}
}

// expectUsageError runs the CLI with args and wants exit code 2, a message on stderr that names
// want, and nothing on stdout.
func expectUsageError(t *testing.T, args []string, want string) {
	t.Helper()
	code, out, errOut := run(t, args...)
	if code != exitUsage {
		t.Errorf("Run(%q): exit %d, want %d; stderr %q", args, code, exitUsage, errOut)
	}
	if !strings.Contains(errOut, want) {
		t.Errorf("Run(%q): stderr %q does not name %q", args, errOut, want)
	}
	if out != "" {
		t.Errorf("Run(%q) wrote to stdout: %q", args, out)
	}
}

func TestHelp(t *testing.T) {
	clearEnv(t)
	for _, cmd := range []string{"serve", "seed"} {
		for _, h := range []string{"--help", "-h"} {
			code, out, errOut := run(t, cmd, h)
			if code != exitOK || errOut != "" {
				t.Errorf("%s %s: exit %d, stderr %q; want 0 and the help on stdout", cmd, h, code, errOut)
			}
			if !strings.Contains(out, "SWARMGATE_") {
				t.Errorf("%s %s: help does not mention the SWARMGATE_ environment twins:\n%s", cmd, h, out)
			}
			o := options{cfg: gateway.DefaultConfig()}
			newFlagSet(cmd, &o, io.Discard).VisitAll(func(f *flag.Flag) {
				if !strings.Contains(out, "-"+f.Name) {
					t.Errorf("%s %s: help does not list -%s", cmd, h, f.Name)
				}
			})
		}
	}
	code, out, errOut := run(t, "help")
	if code != exitOK || errOut != "" || !strings.Contains(out, "serve") || !strings.Contains(out, "seed") {
		t.Errorf("help: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func parse(t *testing.T, args []string, env map[string]string) (options, error) {
	t.Helper()
	o := options{cfg: gateway.DefaultConfig(), logLevel: "info", logFormat: "text"}
	fs := newFlagSet("serve", &o, io.Discard)
	err := parseFlags(fs, args, envFunc(env))
	return o, err
}

func TestEnvTwins(t *testing.T) {
	o, err := parse(t, nil, map[string]string{
		"SWARMGATE_HTTP_ADDR":    "127.0.0.1:9999",
		"SWARMGATE_NO_DHT":       "true",
		"SWARMGATE_NO_UPNP":      "1",
		"SWARMGATE_BT_PORT":      "7000",
		"SWARMGATE_ICE_SERVER":   "stun:stun.example.org:3478, turn:u:p@turn.example.org:3478",
		"SWARMGATE_PUBLIC_IP":    "203.0.113.7,2001:db8::1",
		"SWARMGATE_LOG_LEVEL":    "debug",
		"SWARMGATE_LOG_FORMAT":   "json",
		"SWARMGATE_DATA_DIR":     "/srv/swarmgate",
		"SWARMGATE_PUBLIC_URL":   "https://tv.example.org",
		"SWARMGATE_DEMO":         "false",
		"SWARMGATE_CACHE_SIZE":   "500M",
		"SWARMGATE_IDLE_TIMEOUT": "90m",
		"SWARMGATE_UNRELATED":    "ignored",
		"HTTP_ADDR":              "0.0.0.0:1",
	})
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.HTTPAddr != "127.0.0.1:9999" || !c.NoDHT || !c.NoUPnP || c.BTPort != 7000 || c.DataDir != "/srv/swarmgate" ||
		c.PublicURL != "https://tv.example.org" || c.Demo || o.logLevel != "debug" || o.logFormat != "json" ||
		c.CacheSize != 500<<20 || c.IdleTimeout != 90*time.Minute {
		t.Errorf("from env: %+v level %q format %q", c, o.logLevel, o.logFormat)
	}
	if len(c.ICEServers) != 2 || c.ICEServers[0].URLs[0] != "stun:stun.example.org:3478" ||
		c.ICEServers[1].URLs[0] != "turn:turn.example.org:3478" || c.ICEServers[1].Username != "u" || c.ICEServers[1].Credential != "p" {
		t.Errorf("ice servers from env: %+v", c.ICEServers)
	}
	if len(c.PublicIPs) != 2 || c.PublicIPs[0] != "203.0.113.7" || c.PublicIPs[1] != "2001:db8::1" {
		t.Errorf("public IPs from env: %q", c.PublicIPs)
	}

	// Nothing set: the defaults.
	o, err = parse(t, nil, nil)
	if err != nil || o.cfg.HTTPAddr != gateway.DefaultConfig().HTTPAddr || o.cfg.NoDHT || len(o.cfg.ICEServers) != 0 {
		t.Errorf("no env: %+v, %v", o.cfg, err)
	}
}

func TestEnvTwinErrors(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"SWARMGATE_BT_PORT", "lots"},
		{"SWARMGATE_NO_DHT", "maybe"},
		{"SWARMGATE_PUBLIC_IP", "1.2.3"},
		{"SWARMGATE_ICE_SERVER", "stun:ok.example.org:3478,http://bad"},
		{"SWARMGATE_CACHE_SIZE", "big"},
		{"SWARMGATE_IDLE_TIMEOUT", "a while"},
	} {
		_, err := parse(t, nil, map[string]string{tc.name: tc.value})
		if err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s=%q: error %v, want one naming %s", tc.name, tc.value, err, tc.name)
		}
	}
	// Two bad ones: both reported.
	_, err := parse(t, nil, map[string]string{"SWARMGATE_BT_PORT": "x", "SWARMGATE_WEBRTC_UDP_PORT": "y"})
	if err == nil || !strings.Contains(err.Error(), "SWARMGATE_BT_PORT") || !strings.Contains(err.Error(), "SWARMGATE_WEBRTC_UDP_PORT") {
		t.Errorf("two bad env vars: %v", err)
	}
	// A bad env twin is a usage error from Run too, and names the variable.
	clearEnv(t)
	t.Setenv("SWARMGATE_BT_PORT", "lots")
	// The bad --log-level is a backstop: were the env twin not read, Run still stops before serving.
	code, _, errOut := run(t, "serve", "--log-level", "loud")
	if code != exitUsage || !strings.Contains(errOut, "SWARMGATE_BT_PORT") {
		t.Errorf("serve with SWARMGATE_BT_PORT=lots: exit %d, stderr %q", code, errOut)
	}
}

func TestFlagWinsOverEnv(t *testing.T) {
	env := map[string]string{
		"SWARMGATE_HTTP_ADDR":  "127.0.0.1:1111",
		"SWARMGATE_BT_PORT":    "not-a-port", // ignored: the flag is given
		"SWARMGATE_ICE_SERVER": "stun:env.example.org:3478",
		"SWARMGATE_NO_DHT":     "true",
	}
	o, err := parse(t, []string{"--http-addr", "127.0.0.1:2222", "--bt-port", "6000",
		"--ice-server", "stun:flag.example.org:3478", "--no-dht=false"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.HTTPAddr != "127.0.0.1:2222" || o.cfg.BTPort != 6000 || o.cfg.NoDHT {
		t.Errorf("flags lost to env: %+v", o.cfg)
	}
	if len(o.cfg.ICEServers) != 1 || o.cfg.ICEServers[0].URLs[0] != "stun:flag.example.org:3478" {
		t.Errorf("repeatable flag merged with its env twin: %+v", o.cfg.ICEServers)
	}
}

func TestICEServerFlag(t *testing.T) {
	o, err := parse(t, []string{"--ice-server", "stun:a.example.org:3478", "--ice-server", "turns:u:p@b.example.org:5349?transport=tcp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []gateway.ICEServer{
		{URLs: []string{"stun:a.example.org:3478"}},
		{URLs: []string{"turns:b.example.org:5349?transport=tcp"}, Username: "u", Credential: "p"},
	}
	if len(o.cfg.ICEServers) != 2 {
		t.Fatalf("%+v", o.cfg.ICEServers)
	}
	for i := range want {
		g, w := o.cfg.ICEServers[i], want[i]
		if g.URLs[0] != w.URLs[0] || g.Username != w.Username || g.Credential != w.Credential {
			t.Errorf("ice server %d = %+v, want %+v", i, g, w)
		}
	}
	for _, bad := range []string{"http://x", "turn:host:3478", "stun:host", "turn::p@h:1", ""} {
		if _, err := parse(t, []string{"--ice-server", bad}, nil); err == nil {
			t.Errorf("--ice-server %q accepted", bad)
		}
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

func TestLocalBaseURL(t *testing.T) {
	for _, tc := range []struct {
		public string
		addr   net.Addr
		want   string
	}{
		{"", fakeAddr(":8080"), "http://localhost:8080"},
		{"", fakeAddr("127.0.0.1:9000"), "http://127.0.0.1:9000"},
		{"", fakeAddr("[::]:80"), "http://localhost:80"},
		{"", fakeAddr("0.0.0.0:8080"), "http://localhost:8080"},
		{"", fakeAddr("[::1]:8080"), "http://[::1]:8080"},
		{"", fakeAddr("192.0.2.10:8080"), "http://192.0.2.10:8080"},
		{"", &net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, "http://localhost:8080"},
		{"https://tv.example.org/", fakeAddr("[::]:80"), "https://tv.example.org"},
		{"https://tv.example.org/sub", fakeAddr("[::]:80"), "https://tv.example.org/sub"},
	} {
		cfg := gateway.DefaultConfig()
		cfg.PublicURL = tc.public
		if got := localBaseURL(cfg, tc.addr); got != tc.want {
			t.Errorf("localBaseURL(public %q, %s) = %q, want %q", tc.public, tc.addr, got, tc.want)
		}
	}
}

func TestNewLogger(t *testing.T) {
	for _, lv := range []string{"debug", "info", "warn", "error", "INFO"} {
		for _, f := range []string{"text", "json"} {
			if _, err := newLogger(lv, f, io.Discard); err != nil {
				t.Errorf("newLogger(%q, %q): %v", lv, f, err)
			}
		}
	}
	var buf bytes.Buffer
	log, err := newLogger("warn", "json", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown")
	if s := buf.String(); strings.Contains(s, "hidden") || !strings.Contains(s, `"msg":"shown"`) {
		t.Errorf("json logger at warn wrote %q", s)
	}
	if _, err := newLogger("loud", "text", io.Discard); err == nil || !strings.Contains(err.Error(), "log-level") {
		t.Errorf("bad level: %v", err)
	}
	if _, err := newLogger("info", "xml", io.Discard); err == nil || !strings.Contains(err.Error(), "log-format") {
		t.Errorf("bad format: %v", err)
	}
}

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {1 << 20, "1.0 MiB"}, {5 << 30, "5.0 GiB"},
	} {
		if got := byteSize(tc.n); got != tc.want {
			t.Errorf("byteSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// TestParseFlagsHelp guards the assumption TestHelp rests on: -h ends parsing with flag.ErrHelp.
func TestParseFlagsHelp(t *testing.T) {
	_, err := parse(t, []string{"-h"}, nil)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

func TestSizeFlagString(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 10 << 30: "10G", 1536 << 20: "1536M", 512 << 10: "512k", 1000: "1000"} {
		f := sizeFlag(n)
		if got := f.String(); got != want {
			t.Errorf("sizeFlag(%d) = %q, want %q", n, got, want)
		}
		var back sizeFlag
		if err := back.Set(want); err != nil || back != f {
			t.Errorf("Set(%q) = %d, %v; want %d", want, back, err, n)
		}
	}
}
