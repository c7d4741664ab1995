package cli

import (
	"flag"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/swarmgate/swarmgate/gateway"
)

// TestUsageListsCommands: every way of asking for help prints the command list on stdout and
// exits 0, the list naming every command (the live subcommands and broadcast's test source too).
func TestUsageListsCommands(t *testing.T) {
	clearEnv(t)
	for _, ask := range [][]string{{"help"}, {"--help"}, {"-h"}, {"-help"}, {"help", "help"}} {
		code, out, errOut := run(t, ask...)
		if code != exitOK || errOut != "" {
			t.Errorf("%q: exit %d, stderr %q; want 0 and nothing on stderr", ask, code, errOut)
		}
		if !strings.HasPrefix(out, "Usage: swarmgate COMMAND") {
			t.Errorf("%q: stdout does not start with the usage line:\n%s", ask, out)
		}
		for _, want := range []string{"serve", "seed", "broadcast", "--test-source", "live keygen", "live id", "health", "version", "--version", "help COMMAND", "swarmgate serve --demo"} {
			if !strings.Contains(out, "  "+want) && !strings.Contains(out, want) {
				t.Errorf("%q: the command list does not mention %q:\n%s", ask, want, out)
			}
		}
		for _, c := range commands {
			if !strings.Contains(out, "\n  "+c.name+" ") {
				t.Errorf("%q: the command list has no line for %q", ask, c.name)
			}
		}
	}
}

// TestCommandHelp: each listed command has help of its own, the same from "swarmgate help CMD"
// and "swarmgate CMD --help", on stdout with exit 0, starting with its usage line and saying what
// it does.
func TestCommandHelp(t *testing.T) {
	clearEnv(t)
	for _, c := range commands {
		words := strings.Fields(c.name)
		code, viaHelp, errOut := run(t, append([]string{"help"}, words...)...)
		if code != exitOK || errOut != "" {
			t.Errorf("help %s: exit %d, stderr %q", c.name, code, errOut)
		}
		want := "Usage: swarmgate " + c.name
		if c.name == "help" {
			want = "Usage: swarmgate COMMAND"
		}
		if !strings.HasPrefix(viaHelp, want) {
			t.Errorf("help %s: stdout does not start with %q:\n%s", c.name, want, viaHelp)
		}
		// A sentence or more on what the command does, between the usage and the flags.
		if about, _, _ := strings.Cut(viaHelp, "Flags:"); len(strings.Fields(about)) < 15 {
			t.Errorf("help %s says too little about what it does:\n%s", c.name, viaHelp)
		}
		for _, h := range []string{"--help", "-h"} {
			code, out, errOut := run(t, append(words, h)...)
			if code != exitOK || errOut != "" || out != viaHelp {
				t.Errorf("%s %s: exit %d, stderr %q, stdout differs from help %s's:\n%s", c.name, h, code, errOut, c.name, out)
			}
		}
	}
	// "help live" is live's own list.
	code, out, errOut := run(t, "help", "live")
	if code != exitOK || errOut != "" || !strings.Contains(out, "live keygen") || !strings.Contains(out, "live id") {
		t.Errorf("help live: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestCommandHelpListsOnlyItsFlags: each command's help lists its own flags, not serve's.
func TestCommandHelpListsOnlyItsFlags(t *testing.T) {
	clearEnv(t)
	for _, tc := range []struct {
		args    []string
		want    []string
		notWant []string
	}{
		{[]string{"health", "--help"}, []string{"--url", "--timeout", "--config"}, []string{"--http-addr", "--relay", "env SWARMGATE_URL"}},
		{[]string{"live", "keygen", "--help"}, []string{"--out"}, []string{"--key", "--http-addr"}},
		{[]string{"live", "id", "--help"}, []string{"--key"}, []string{"--out", "--http-addr"}},
		{[]string{"broadcast", "--help"}, []string{"--gateway", "--token", "--key", "--test-source", "--loop", "SWARMGATE_GATEWAY"}, []string{"--http-addr", "--relay", "--bt-port"}},
		{[]string{"version", "--help"}, nil, []string{"--"}},
	} {
		_, out, _ := run(t, tc.args...)
		_, flags, _ := strings.Cut(out, "Flags:")
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q does not mention %s:\n%s", tc.args, w, out)
			}
		}
		for _, w := range tc.notWant {
			if strings.Contains(flags, w) {
				t.Errorf("%q lists %s, which is not its flag:\n%s", tc.args, w, out)
			}
		}
	}
}

// TestSeedFlags: seed lists and takes serve's flags but the live-stream ones and --demo, and says
// which gateway flags it takes and why.
func TestSeedFlags(t *testing.T) {
	clearEnv(t)
	serveFlags := newFlagSet("serve", &options{cfg: gateway.DefaultConfig()}, io.Discard)
	seedFlags := newFlagSet("seed", &options{cfg: gateway.DefaultConfig()}, io.Discard)
	_, serveHelp, _ := run(t, "serve", "--help")
	_, seedHelp, _ := run(t, "seed", "--help")
	_, seedFlagList, _ := strings.Cut(seedHelp, "\nSettings:\n")
	for _, name := range []string{"relay", "ingest-token", "live-window", "live-max-bytes", "max-live-streams", "demo"} {
		if !serveOnly[name] || seedFlags.Lookup(name) != nil {
			t.Errorf("seed has serve's --%s", name)
		}
		if strings.Contains(seedFlagList, "--"+name+" ") || strings.Contains(seedFlagList, "--"+name+"\n") {
			t.Errorf("seed --help lists --%s", name)
		}
		if !strings.Contains(serveHelp, "--"+name) {
			t.Errorf("serve --help does not list --%s", name)
		}
	}
	serveFlags.VisitAll(func(f *flag.Flag) {
		if !serveOnly[f.Name] && seedFlags.Lookup(f.Name) == nil {
			t.Errorf("seed lacks serve's gateway flag --%s", f.Name)
		}
	})
	for _, w := range []string{"Hashes each PATH", "seeds them in place", "--relay", "serve's only"} {
		if !strings.Contains(seedHelp, w) {
			t.Errorf("seed --help does not say %q", w)
		}
	}

	// On the command line a serve-only flag is a usage error that says so.
	expectUsageError(t, safeArgs(t, "seed", "--relay", "http://127.0.0.1:1/live/x", t.TempDir()), "--relay is serve's only")

	// From the environment and a config file shared with serve, they are not seed's business.
	cfg := writeConfig(t, "relay = https://origin.example.org/live/abc\ningest-token = 0123456789abcdef0123\ndemo\nhttp-addr = 127.0.0.1:9999\n")
	o := options{cfg: gateway.DefaultConfig(), logLevel: "info", logFormat: "text"}
	err := parseFlags(newFlagSet("seed", &o, io.Discard), []string{"--config", cfg},
		envFunc(map[string]string{"SWARMGATE_INGEST_TOKEN": "fedcba9876543210fedc", "SWARMGATE_RELAY": "https://x.example.org/live/y"}))
	if err != nil {
		t.Fatalf("seed with serve's config file and environment: %v", err)
	}
	if o.cfg.HTTPAddr != "127.0.0.1:9999" || o.cfg.IngestToken != "" || len(o.cfg.Relays) != 0 || o.cfg.Demo {
		t.Errorf("seed took serve-only settings, or lost its own: %+v", o.cfg)
	}
	// serve still rejects an unknown setting, and seed one that is nobody's.
	bad := writeConfig(t, "relays = x\n")
	for _, cmd := range []string{"serve", "seed"} {
		o := options{cfg: gateway.DefaultConfig()}
		if err := parseFlags(newFlagSet(cmd, &o, io.Discard), []string{"--config", bad}, envFunc(nil)); err == nil || !strings.Contains(err.Error(), `unknown setting "relays"`) {
			t.Errorf("%s with an unknown setting: %v", cmd, err)
		}
	}
}

// TestFlagSections: serve's help groups every flag under exactly one heading, none under "Other".
func TestFlagSections(t *testing.T) {
	fs := newFlagSet("serve", &options{cfg: gateway.DefaultConfig()}, io.Discard)
	seen := map[string]string{}
	for _, s := range flagSections {
		for _, name := range s.names {
			if fs.Lookup(name) == nil {
				t.Errorf("section %q names --%s, which serve has not", s.title, name)
			}
			if prev, ok := seen[name]; ok {
				t.Errorf("--%s is in sections %q and %q", name, prev, s.title)
			}
			seen[name] = s.title
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := seen[f.Name]; !ok {
			t.Errorf("--%s is in no section of the help", f.Name)
		}
	})
	var b strings.Builder
	printFlagSections(&b, fs)
	if strings.Contains(b.String(), "Other:") {
		t.Errorf("serve's help has an Other section:\n%s", b.String())
	}
}

// TestBareCommandStartsNothing: "swarmgate" alone prints the command list on stderr, says how to
// start a gateway and exits 2, and neither it nor flags without a command start serve.
func TestBareCommandStartsNothing(t *testing.T) {
	clearEnv(t)
	// Were serve started after all, it would stop at the bad log level (exit 2 naming it) before
	// listening, and the twins keep it on loopback.
	t.Setenv("SWARMGATE_LOG_LEVEL", "loud")
	t.Setenv("SWARMGATE_HTTP_ADDR", "127.0.0.1:0")
	t.Setenv("SWARMGATE_BT_PORT", "0")
	t.Setenv("SWARMGATE_NO_DHT", "true")
	t.Setenv("SWARMGATE_NO_UPNP", "true")
	t.Setenv("SWARMGATE_DATA_DIR", t.TempDir())
	code, out, errOut := run(t)
	if code != exitUsage || out != "" {
		t.Errorf("bare swarmgate: exit %d, stdout %q; want 2 and nothing on stdout", code, out)
	}
	for _, w := range []string{"Commands:", "live id", "swarmgate serve", "no command given"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("bare swarmgate: stderr does not say %q:\n%s", w, errOut)
		}
	}
	if strings.Contains(errOut, "log-level") {
		t.Errorf("bare swarmgate ran serve: %s", errOut)
	}
	// Flags without a command: a usage error that shows where they go (the flag given is a bad
	// one, for the same reason as above).
	expectUsageError(t, []string{"--log-format", "xml"}, `flags go after a command, e.g. "swarmgate serve --log-format"`)
	expectUsageError(t, []string{"--demo"}, `"swarmgate serve --demo"`)
}

// TestVersionFlag: --version and -v print what the version command prints.
func TestVersionFlag(t *testing.T) {
	clearEnv(t)
	_, want, _ := run(t, "version")
	for _, v := range []string{"--version", "-version", "-v"} {
		code, out, errOut := run(t, v)
		if code != exitOK || out != want || errOut != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 0 and %q", v, code, out, errOut, want)
		}
	}
	expectUsageError(t, []string{"version", "extra"}, "takes no arguments")
	expectUsageError(t, []string{"--version", "extra"}, "takes no arguments")
}

// TestUsageErrorsPointAtHelp: a usage mistake is one line on stderr saying what is wrong, then one
// pointing at the help; exit 2 and nothing on stdout.
func TestUsageErrorsPointAtHelp(t *testing.T) {
	clearEnv(t)
	for _, tc := range []struct {
		args       []string
		want, help string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`, `"swarmgate help"`},
		{[]string{"help", "frobnicate"}, `unknown command "frobnicate"`, `"swarmgate help"`},
		{[]string{"--no-such-flag"}, "--no-such-flag", `"swarmgate help"`},
		{safeArgs(t, "serve", "--no-such-flag"), "serve: unknown flag --no-such-flag", `"swarmgate serve --help"`},
		{safeArgs(t, "seed", "--no-such-flag", t.TempDir()), "seed: unknown flag --no-such-flag", `"swarmgate seed --help"`},
		{safeArgs(t, "serve", "--bt-port", "many"), `--bt-port "many": want a whole number`, `"swarmgate serve --help"`},
		{[]string{"health", "--no-such-flag"}, "health: unknown flag --no-such-flag", `"swarmgate health --help"`},
		{[]string{"health", "extra"}, "takes no arguments", `"swarmgate health --help"`},
		{[]string{"health", "--timeout", "soon"}, `--timeout "soon": want a duration`, `"swarmgate health --help"`},
		{[]string{"live", "frobnicate"}, `unknown live subcommand "frobnicate"`, `"swarmgate live help"`},
		{[]string{"live", "keygen", "--no-such-flag"}, "unknown flag --no-such-flag", `"swarmgate live keygen --help"`},
		{[]string{"live", "id"}, "needs --key FILE", `"swarmgate live id --help"`},
		{[]string{"broadcast", "--no-such-flag"}, "unknown flag --no-such-flag", `"swarmgate broadcast --help"`},
		{[]string{"broadcast", "--test-source"}, "needs --gateway URL", `"swarmgate broadcast --help"`},
		{safeArgs(t, "serve", "extra"), "serve takes no arguments", `"swarmgate serve --help"`},
		{safeArgs(t, "seed"), "seed needs at least one PATH", `"swarmgate seed --help"`},
	} {
		code, out, errOut := run(t, tc.args...)
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		if code != exitUsage || out != "" || len(lines) != 2 || !strings.Contains(lines[0], tc.want) ||
			!strings.HasPrefix(lines[1], "Run ") || !strings.Contains(lines[1], tc.help) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2, a line saying %q and one pointing at %s",
				tc.args, code, out, errOut, tc.want, tc.help)
		}
	}
}

// readmeCommand finds "swarmgate COMMAND" in README.md's inline code and at the start of a
// shell line.
var readmeCommand = regexp.MustCompile("(?m)(?:`|^(?:\\$ )?)swarmgate ([a-z][a-z-]*)")

// TestReadmeCommandsExist: each "swarmgate COMMAND" the README shows in code is a listed command.
func TestReadmeCommandsExist(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range commands {
		names = append(names, strings.Fields(c.name)[0])
	}
	found := 0
	for _, block := range shellBlocks.FindAllStringSubmatch(string(data), -1) {
		for _, m := range readmeCommand.FindAllStringSubmatch(block[1], -1) {
			found++
			if !slices.Contains(names, m[1]) {
				t.Errorf("README.md runs %q, which is not a command", m[0])
			}
		}
	}
	for _, m := range regexp.MustCompile("`swarmgate ([a-z][a-z-]*)").FindAllStringSubmatch(string(data), -1) {
		found++
		if !slices.Contains(names, m[1]) {
			t.Errorf("README.md shows %q, which is not a command", m[0])
		}
	}
	if found < 5 {
		t.Errorf("found only %d swarmgate commands in README.md", found)
	}
}

// shellBlocks are README.md's ```sh blocks.
var shellBlocks = regexp.MustCompile("(?s)```sh\n(.*?)```")
