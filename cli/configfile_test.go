package cli

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/swarmgate/swarmgate/gateway"
)

// writeConfig writes a config file into a fresh temporary folder and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "swarmgate.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigFilePrecedence(t *testing.T) {
	file := writeConfig(t, `
http-addr = 127.0.0.1:1111
bt-port = 1111
ice-server = stun:file-a.example.org:3478
ice-server = stun:file-b.example.org:3478
no-dht = true
data-dir = /srv/from-file
`)
	ice := func(o options) string {
		var urls []string
		for _, s := range o.cfg.ICEServers {
			urls = append(urls, s.URLs...)
		}
		return strings.Join(urls, " ")
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		get  func(options) string
		want string
	}{
		{"default, no file", nil, nil, func(o options) string { return o.cfg.HTTPAddr }, ":8080"},
		{"file", []string{"--config", file}, nil, func(o options) string { return o.cfg.HTTPAddr }, "127.0.0.1:1111"},
		{"file via SWARMGATE_CONFIG", nil, map[string]string{"SWARMGATE_CONFIG": file}, func(o options) string { return o.cfg.HTTPAddr }, "127.0.0.1:1111"},
		{"env over file", []string{"--config", file}, map[string]string{"SWARMGATE_HTTP_ADDR": "127.0.0.1:2222"},
			func(o options) string { return o.cfg.HTTPAddr }, "127.0.0.1:2222"},
		{"flag over env over file", []string{"--config", file, "--http-addr", "127.0.0.1:3333"},
			map[string]string{"SWARMGATE_HTTP_ADDR": "127.0.0.1:2222"}, func(o options) string { return o.cfg.HTTPAddr }, "127.0.0.1:3333"},
		{"flag before --config still wins", []string{"--bt-port", "3333", "--config", file}, nil,
			func(o options) string { return strconv.Itoa(o.cfg.BTPort) }, "3333"},
		{"file int", []string{"--config", file}, nil, func(o options) string { return strconv.Itoa(o.cfg.BTPort) }, "1111"},
		{"file bool", []string{"--config", file}, nil, func(o options) string { return boolString(o.cfg.NoDHT) }, "true"},
		{"flag bool over file", []string{"--config", file, "--no-dht=false"}, nil, func(o options) string { return boolString(o.cfg.NoDHT) }, "false"},
		{"env bool over file", []string{"--config", file}, map[string]string{"SWARMGATE_NO_DHT": "false"},
			func(o options) string { return boolString(o.cfg.NoDHT) }, "false"},
		{"file repeatable, one line each", []string{"--config", file}, nil, ice, "stun:file-a.example.org:3478 stun:file-b.example.org:3478"},
		{"env repeatable replaces the file's", []string{"--config", file}, map[string]string{"SWARMGATE_ICE_SERVER": "stun:env.example.org:3478"},
			ice, "stun:env.example.org:3478"},
		{"flag repeatable replaces the file's", []string{"--config", file, "--ice-server", "stun:flag.example.org:3478"}, nil,
			ice, "stun:flag.example.org:3478"},
		{"flag --config over SWARMGATE_CONFIG", []string{"--config", writeConfig(t, "data-dir = /srv/flag-file\n")},
			map[string]string{"SWARMGATE_CONFIG": file}, func(o options) string { return o.cfg.DataDir }, "/srv/flag-file"},
		{"untouched setting keeps its default", []string{"--config", file}, nil, func(o options) string { return o.logLevel }, "info"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parse(t, tc.args, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.get(o); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func TestConfigFileSyntax(t *testing.T) {
	file := writeConfig(t, "\ufeff# a comment\r\n"+
		"   # an indented comment\n"+
		"\n"+
		"http-addr=127.0.0.1:4444   # no spaces around = and a trailing comment\n"+
		"no-upnp\n"+
		"no-dht # a bare boolean with a comment\n"+
		`ice-server = "turn:u:p #1@turn.example.org:3478"  # quoted: keeps " #"`+"\n"+
		"ice-server = turn:u:p#2@turn2.example.org:3478\n"+
		"log-level = debug\r\n"+
		"data-dir = \"/srv/with space\"\n")
	o, err := parse(t, []string{"--config", file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.HTTPAddr != "127.0.0.1:4444" || !c.NoUPnP || !c.NoDHT || o.logLevel != "debug" || c.DataDir != "/srv/with space" {
		t.Errorf("parsed %+v, log level %q", c, o.logLevel)
	}
	if len(c.ICEServers) != 2 || c.ICEServers[0].Credential != "p #1" || c.ICEServers[1].Credential != "p#2" ||
		c.ICEServers[1].URLs[0] != "turn:turn2.example.org:3478" {
		t.Errorf("ice servers %+v", c.ICEServers)
	}
}

func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string // each in the error, besides the file's name
	}{
		{"unknown setting", "# ok\nhttp-adr = :1\n", []string{":2:", `unknown setting "http-adr"`}},
		{"env name", "SWARMGATE_BT_PORT = 1\n", []string{":1:", "SWARMGATE_BT_PORT", "did you mean bt-port"}},
		{"dashes", "--bt-port = 1\n", []string{":1:", "did you mean bt-port"}},
		{"int", "\n\nbt-port = lots\n", []string{":3:", `bt-port = "lots"`, "whole number"}},
		{"int range", "bt-port = 99999999999999999999\n", []string{":1:", "bt-port", "out of range"}},
		{"bool", "no-dht = maybe\n", []string{":1:", "no-dht", "true or false"}},
		{"custom value", "public-ip = 1.2.3\n", []string{":1:", "public-ip", "not an IP address"}},
		{"ice-server", "ice-server = turn:host:3478\n", []string{":1:", "ice-server", "user:pass@"}},
		{"bare non-bool", "http-addr\n", []string{":1:", "http-addr = value"}},
		{"no name", "= 1\n", []string{":1:", "flag-name = value"}},
		{"twice", "http-addr = :1\nhttp-addr = :2\n", []string{":2:", "http-addr", "set again (first on line 1)"}},
		{"nested config", "config = /etc/other.conf\n", []string{":1:", "config"}},
		{"bad quote", `data-dir = "/srv` + "\n", []string{":1:", "data-dir", "unterminated"}},
		{"text after quote", `data-dir = "/srv" x` + "\n", []string{":1:", "data-dir", "after the closing quote"}},
		{"two mistakes", "bt-port = x\nno-dht = y\n", []string{":1:", ":2:", "bt-port", "no-dht"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeConfig(t, tc.text)
			_, err := parse(t, []string{"--config", file}, nil)
			if err == nil {
				t.Fatalf("%q accepted", tc.text)
			}
			for _, w := range append(tc.want, file) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// A setting the command line overrides is not applied, but its name is still checked.
	if _, err := parse(t, []string{"--config", writeConfig(t, "bt-port = lots\n"), "--bt-port", "1"}, nil); err != nil {
		t.Errorf("overridden bad value: %v", err)
	}
}

// TestConfigFileRun: through Run, a bad or unreadable config file is a usage error (exit code 2)
// naming the file, the line and the setting, and nothing is served.
func TestConfigFileRun(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	bad := writeConfig(t, "log-level = info\nwebrtc-udp-port = lots\n")
	missing := filepath.Join(dir, "missing.conf")
	for _, tc := range []struct {
		name string
		args []string
		env  string // SWARMGATE_CONFIG
		want []string
	}{
		{"bad value", []string{"serve", "--config", bad}, "", []string{bad + ":2:", "webrtc-udp-port", "whole number"}},
		{"bad value via env", []string{"serve"}, bad, []string{bad + ":2:", "webrtc-udp-port"}},
		{"seed", []string{"seed", "--config", bad, dir}, "", []string{bad + ":2:", "webrtc-udp-port"}},
		{"missing", []string{"serve", "--config", missing}, "", []string{"config file", missing, "no such file"}},
		{"a folder", []string{"serve", "--config", dir}, "", []string{"config file", dir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SWARMGATE_CONFIG", tc.env)
			// --log-level loud is a backstop: had the file been ignored, Run still stops before
			// serving (and the stderr check fails).
			args := safeArgs(t, tc.args[0], append([]string{"--log-level", "loud"}, tc.args[1:]...)...)
			code, out, errOut := run(t, args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr %q", code, exitUsage, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q does not contain %q", errOut, w)
				}
			}
			if out != "" {
				t.Errorf("stdout %q", out)
			}
		})
	}
}

var (
	commentedSetting = regexp.MustCompile(`^# ([a-z][a-z0-9-]* = .*)$`)
	// An alternative ("#~ name = value") replaces other settings rather than going with them
	// (--cluster-nats instead of --cluster-listen): the alternatives are checked on their own.
	alternativeSetting = regexp.MustCompile(`^#~ ([a-z][a-z0-9-]* = .*)$`)
)

// TestConfigExample: docs/swarmgate.conf.example parses as it is, and so does every setting it
// shows commented out, so that its examples are valid values.
func TestConfigExample(t *testing.T) {
	const example = "../docs/swarmgate.conf.example"
	if _, err := parse(t, []string{"--config", example}, nil); err != nil {
		t.Fatalf("%s: %v", example, err)
	}
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	var lines, alternatives []string
	for _, l := range strings.Split(string(data), "\n") {
		if m := commentedSetting.FindStringSubmatch(l); m != nil {
			lines = append(lines, m[1])
		}
		if m := alternativeSetting.FindStringSubmatch(l); m != nil {
			alternatives = append(alternatives, m[1])
		}
	}
	if len(alternatives) > 0 {
		o, err := parse(t, []string{"--config", writeConfig(t, strings.Join(alternatives, "\n"))}, nil)
		if err == nil {
			err = o.cfg.Validate()
		}
		if err != nil {
			t.Errorf("%s, the alternatives (#~) uncommented: %v", example, err)
		}
	}
	if len(lines) < 10 {
		t.Fatalf("%s shows only %d settings", example, len(lines))
	}
	o, err := parse(t, []string{"--config", writeConfig(t, strings.Join(lines, "\n"))}, nil)
	if err != nil {
		t.Fatalf("%s, uncommented: %v", example, err)
	}
	if err := o.cfg.Validate(); err != nil {
		t.Errorf("%s, uncommented: %v", example, err)
	}
	if o.cfg.PublicURL != "https://tv.example.org" || len(o.cfg.ICEServers) != 2 || o.cfg.WebRTCUDPPort != 50000 {
		t.Errorf("%s, uncommented: %+v", example, o.cfg)
	}
}

// TestConfigReadmeExample: the config file shown in README.md parses to what it says.
func TestConfigReadmeExample(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "```ini\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README.md has no ```ini block")
	}
	o, err := parse(t, []string{"--config", writeConfig(t, block)}, nil)
	if err != nil {
		t.Fatalf("README's config file: %v", err)
	}
	c := o.cfg
	if c.HTTPAddr != "127.0.0.1:8080" || c.PublicURL != "https://tv.example.org" || c.DataDir != "/var/lib/swarmgate" ||
		!c.NoUPnP || len(c.ICEServers) != 2 || c.ICEServers[1].Username != "swarmgate" || c.ICEServers[1].Credential != "s3cret" {
		t.Errorf("README's config file: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("README's config file: %v", err)
	}
}

// TestFlagErrorsSayWhy: a bad value on the command line or in the environment says what the flag
// wants, not the flag package's "parse error".
func TestFlagErrorsSayWhy(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--bt-port", "many"}, nil, `--bt-port "many": want a whole number`},
		{[]string{"--webrtc-udp-port=99999999999999999999"}, nil, "--webrtc-udp-port \"99999999999999999999\": want a whole number (out of range)"},
		{[]string{"--no-dht=maybe"}, nil, `--no-dht "maybe": want true or false`},
		{[]string{"--public-ip", "1.2.3"}, nil, `--public-ip "1.2.3": not an IP address`},
		{nil, map[string]string{"SWARMGATE_BT_PORT": "many"}, `SWARMGATE_BT_PORT="many": want a whole number`},
		{nil, map[string]string{"SWARMGATE_NO_UPNP": "maybe"}, `SWARMGATE_NO_UPNP="maybe": want true or false`},
	} {
		_, err := parse(t, tc.args, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %v: error %v, want one containing %q", tc.args, tc.env, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "parse error") {
			t.Errorf("%q %v: error %q says only \"parse error\"", tc.args, tc.env, err)
		}
	}
}

// TestHelpDocumentsSources: serve's and seed's help name every flag's environment twin and the
// config file.
func TestHelpDocumentsSources(t *testing.T) {
	clearEnv(t)
	for _, cmd := range []string{"serve", "seed"} {
		code, help, _ := run(t, cmd, "--help")
		if code != exitOK {
			t.Fatalf("%s --help: exit %d", cmd, code)
		}
		for _, w := range []string{"--config", "SWARMGATE_CONFIG", "flag-name = value", "repeatable", "exit code 2"} {
			if !strings.Contains(help, w) {
				t.Errorf("%s --help does not mention %q", cmd, w)
			}
		}
		fs := newFlagSet(cmd, &options{}, io.Discard)
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(help, "--"+f.Name) || !strings.Contains(help, envName(f.Name)) {
				t.Errorf("%s --help does not list --%s with %s", cmd, f.Name, envName(f.Name))
			}
		})
	}
}

// TestEveryFlagDocumented: each serve flag has a line in the example config file and a row in
// README.md's configuration table, so that neither falls behind when a flag is added.
func TestEveryFlagDocumented(t *testing.T) {
	example, err := os.ReadFile("../docs/swarmgate.conf.example")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	o := options{cfg: gateway.DefaultConfig(), logLevel: "info", logFormat: "text"}
	newFlagSet("serve", &o, io.Discard).VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		if !regexp.MustCompile(`(?m)^(?:#~? )?` + regexp.QuoteMeta(f.Name) + ` = `).Match(example) {
			t.Errorf("docs/swarmgate.conf.example has no %q line", f.Name)
		}
		if !strings.Contains(string(readme), "| `--"+f.Name+"`") {
			t.Errorf("README.md's configuration table has no row for --%s", f.Name)
		}
	})
}

// composeSetting is one SWARMGATE_ variable a compose file sets.
var composeSetting = regexp.MustCompile(`(?m)^\s+(SWARMGATE_[A-Z_]+):\s*(.+?)\s*(?:#.*)?$`)

// TestComposeFilesSettings: every SWARMGATE_ variable the compose files set is a flag's twin and
// holds a value serve accepts, service by service (the cluster file's nodes differ), so that
// the files do not drift from the flags. ${VAR:?...} stands for a value the operator supplies.
func TestComposeFilesSettings(t *testing.T) {
	for _, file := range []string{"../docker-compose.yml", "../docker-compose.cluster.yml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		// The shared blocks (x-...: &anchor) first, then each service's own lines over them.
		shared := map[string]string{}
		var services []map[string]string
		var cur map[string]string
		for _, line := range strings.Split(string(data), "\n") {
			switch {
			case strings.HasPrefix(line, "x-"):
				cur = shared
			case regexp.MustCompile(`^  [a-z0-9]+:$`).MatchString(line) && !strings.HasPrefix(line, "  <<"):
				cur = map[string]string{}
				services = append(services, cur)
			case !strings.HasPrefix(line, " ") && line != "":
				cur = nil
			}
			if m := composeSetting.FindStringSubmatch(line); m != nil && cur != nil {
				v := strings.Trim(m[2], `"`)
				if strings.HasPrefix(v, "${") {
					v = "operator-supplied-secret-0123456789"
				}
				cur[m[1]] = v
			}
		}
		twins := map[string]bool{}
		o := options{cfg: gateway.DefaultConfig()}
		newFlagSet("serve", &o, io.Discard).VisitAll(func(f *flag.Flag) { twins[envName(f.Name)] = true })
		checked := 0
		for _, own := range services {
			if len(own) == 0 {
				continue // nginx, caddy
			}
			env := map[string]string{}
			for k, v := range shared {
				env[k] = v
			}
			for k, v := range own {
				env[k] = v
			}
			for k := range env {
				if !twins[k] {
					t.Errorf("%s sets %s, which no flag reads", file, k)
				}
			}
			o, err := parse(t, nil, env)
			if err == nil {
				err = o.cfg.Validate()
			}
			if err != nil {
				t.Errorf("%s, a service's settings %v: %v", file, env, err)
			}
			checked++
		}
		if checked == 0 {
			t.Errorf("%s: no service with SWARMGATE_ settings found", file)
		}
	}
}
