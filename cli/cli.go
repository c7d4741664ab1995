// Package cli is swarmgate's command line: its commands (serve, seed, broadcast, live, health,
// version, help) and their help, flags with environment twins and a config file, logging setup and
// signal handling. It holds no gateway logic.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/swarmgate/swarmgate/gateway"
)

// Version is set at build time with -ldflags "-X github.com/swarmgate/swarmgate/cli.Version=...".
var Version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// envPrefix names every flag's environment twin: --http-addr is SWARMGATE_HTTP_ADDR.
const envPrefix = "SWARMGATE_"

// Run executes the command line args (without the program name) and returns the exit code.
// Help asked for goes to stdout with exit code 0; a usage mistake gets one line on stderr that
// points at the help, and exit code 2.
func Run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		// Nothing is started without a command: a bare "swarmgate" is what people type to learn
		// what the tool is, not to open ports on every interface and write a data folder here.
		usage(stderr)
		fmt.Fprintln(stderr, "\nswarmgate: no command given. To start a gateway: swarmgate serve (or swarmgate serve --demo)")
		return exitUsage
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(args, nil, stdout, stderr)
	case "seed":
		if wantsGateway(args) {
			return seedInto(args, stdout, stderr)
		}
		return serve(args, seedPaths, stdout, stderr)
	case "version", "--version", "-version", "-v":
		return version(cmd, args, stdout, stderr)
	case "health":
		return health(args, stdout, stderr)
	case "live":
		return liveCmd(args, stdout, stderr)
	case "broadcast":
		return broadcastCmd(args, stdout, stderr)
	case "help", "--help", "-help", "-h":
		return help(args, stdout, stderr)
	}
	if strings.HasPrefix(cmd, "-") {
		fmt.Fprintf(stderr, "swarmgate: %s: flags go after a command, e.g. \"swarmgate serve %s\"\n%s", cmd, cmd, seeHelp)
	} else {
		fmt.Fprintf(stderr, "swarmgate: unknown command %q\n%s", cmd, seeHelp)
	}
	return exitUsage
}

// seeHelp ends a usage mistake's message.
const seeHelp = "Run \"swarmgate help\" for the commands.\n"

type commandLine struct{ name, summary string }

// commands is the command list of the usage, in the order a new user needs them. Each name (its
// words after "swarmgate") also works after "swarmgate help".
var commands = []commandLine{
	{"serve", "run the gateway until stopped (try it: swarmgate serve --demo)"},
	{"seed", "hash files or folders, seed them from a gateway and print their magnets"},
	{"broadcast", "send a video file or URL live to a gateway, or a test pattern (--test-source)"},
	{"live keygen", "make a live stream's broadcaster key and print its stream id"},
	{"live id", "print the stream id of a broadcaster key"},
	{"health", "exit 0 if a gateway answers /readyz (container health checks)"},
	{"version", "print the version (also: swarmgate --version)"},
	{"help", "print this list, or a command's help: swarmgate help COMMAND"},
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: swarmgate COMMAND [flags] [arguments]

swarmgate puts BitTorrent video in the browser: it joins BitTorrent swarms as a native peer and
bridges their pieces to browsers over WebRTC, with a player, an HTTP API and a WebTorrent tracker.

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
"swarmgate serve" starts a gateway (on :8080, every interface); a bare "swarmgate" starts nothing.
"swarmgate help COMMAND" or "swarmgate COMMAND --help" says what a command does and lists its flags.
The flags of serve, seed and broadcast have environment twins (--http-addr is SWARMGATE_HTTP_ADDR);
serve's and seed's may also come from a config file ("http-addr = :8080" in the file that --config
FILE or SWARMGATE_CONFIG=FILE names).
`)
}

// help runs "swarmgate help [COMMAND]": the command's own --help, so that each help text lives
// with its command.
func help(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0 || asksHelp(args[0]):
		usage(stdout)
		return exitOK
	case args[0] == "live":
		if len(args) == 1 {
			return liveCmd([]string{"help"}, stdout, stderr)
		}
		return liveCmd([]string{args[1], "--help"}, stdout, stderr)
	case slices.ContainsFunc(commands, func(c commandLine) bool { return c.name == args[0] }):
		return Run([]string{args[0], "--help"}, stdout, stderr)
	}
	fmt.Fprintf(stderr, "swarmgate: help: unknown command %q\n%s", strings.Join(args, " "), seeHelp)
	return exitUsage
}

// asksHelp reports whether arg asks for help where a command or flag could stand.
func asksHelp(arg string) bool {
	return arg == "help" || arg == "--help" || arg == "-help" || arg == "-h"
}

// version prints the version; it takes no arguments.
func version(cmd string, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if cmd == "version" && len(args) == 1 && asksHelp(args[0]) {
			fmt.Fprint(stdout, `Usage: swarmgate version

Prints swarmgate's version: the one set at build time (make build sets it from git describe),
else the Go module's, else "dev". "swarmgate --version" does the same.
`)
			return exitOK
		}
		fmt.Fprintf(stderr, "swarmgate: %s takes no arguments, got %q\n%s", cmd, args, seeHelp)
		return exitUsage
	}
	fmt.Fprintln(stdout, "swarmgate", versionString())
	return exitOK
}

const serveHelp = `Usage: swarmgate serve [flags]

Runs the gateway until Ctrl-C or SIGTERM (the first drains, a second stops at once). It joins
BitTorrent swarms as a native peer (TCP, uTP, DHT, trackers), runs a WebTorrent tracker on a
websocket, bridges pieces to browsers over WebRTC, and serves the pages, the HTTP API, streams and
the webseed on --http-addr (default :8080, every interface). --demo seeds a built-in video to try
it with; torrents are added over the API or the home page.
`

const seedHelp = `Usage: swarmgate seed [flags] PATH...

Hashes each PATH (a file, or a folder as one torrent) with a progress bar, then runs a gateway
that seeds them in place (read where they are, never copied), prints each one's magnet and watch
URL and serves until Ctrl-C or SIGTERM. Flags go before the first PATH.

The gateway is serve's, so seed takes serve's flags for listening, peers, disk, access, limits and
logs; serve's live-stream flags (--ingest-token, --relay, --live-window, --live-max-bytes,
--max-live-streams), its cluster flags (--cluster-*, --node-name) and --demo are serve's only,
and a config file's lines for them are skipped here. It listens on --http-addr and --bt-port like serve: beside a running gateway, give it others.
`

// settingsHelp explains, in serve's and seed's help, where settings come from.
const settingsHelp = `
Every setting comes from the first of: the command line; its environment twin, SWARMGATE_ and the
flag's name in capitals with _ for - (repeatable flags: comma-separated values); the config file
(--config FILE or SWARMGATE_CONFIG=FILE); the default.

The config file holds one "flag-name = value" a line, the names exactly the flags' below, e.g.
"http-addr = :8080" or "no-dht = true". # starts a comment (at the start of a line, or after a
space); a value in double quotes keeps spaces and #; a repeatable flag takes one line per value.
An unknown name or a bad value stops swarmgate with the file, line and setting (exit code 2).
`

// serveOnly are serve's flags that seed has not: seed's gateway seeds the paths it is given and
// holds no live streams.
var serveOnly = map[string]bool{
	"demo": true, "ingest-token": true, "relay": true, "live-window": true, "live-max-bytes": true, "max-live-streams": true,
	"cluster-nats": true, "cluster-creds": true, "cluster-listen": true, "cluster-routes": true, "cluster-secret": true,
	"node-name": true, "cluster-advertise": true,
}

// flagSections groups serve's and seed's flags in their help, in this order. A flag missing here
// is still listed, under "Other" (TestFlagSections keeps that from happening).
var flagSections = []struct {
	title string
	names []string
}{
	{"Settings", []string{"config", "demo"}},
	{"HTTP", []string{"http-addr", "public-url", "metrics-addr"}},
	{"Peers: BitTorrent and WebRTC", []string{"bt-port", "no-dht", "no-upnp", "webrtc-udp-port", "public-ip", "ice-server"}},
	{"Disk and bandwidth", []string{"data-dir", "cache-size", "idle-timeout", "upload-rate", "upload-sharing"}},
	{"Media", []string{"ffprobe", "ffmpeg", "transcode", "max-transcodes", "hwaccel"}},
	{"Access", []string{"admin-token", "allow-add", "allow-infohash", "allow-infohash-file", "cors-origins", "embed-origins", "trusted-proxy"}},
	{"Limits", []string{"max-torrents", "max-ws-per-ip", "max-swarms-per-socket", "max-message-bytes", "max-offers-per-sec", "max-webrtc-peers", "max-webrtc-peers-per-torrent"}},
	{"Live streams", []string{"ingest-token", "relay", "live-window", "live-max-bytes", "max-live-streams"}},
	{"Cluster", []string{"cluster-nats", "cluster-creds", "cluster-listen", "cluster-routes", "cluster-secret", "node-name", "cluster-advertise"}},
	{"Logs", []string{"log-level", "log-format", "access-log"}},
}

// printFlagSections lists the flags of fs under flagSections' titles, with their environment
// twins.
func printFlagSections(w io.Writer, fs *flag.FlagSet) {
	listed := map[string]bool{}
	section := func(title string, flags []*flag.Flag) {
		if len(flags) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		for _, f := range flags {
			printFlag(w, f, true)
			listed[f.Name] = true
		}
	}
	for _, s := range flagSections {
		var flags []*flag.Flag
		for _, name := range s.names {
			if f := fs.Lookup(name); f != nil {
				flags = append(flags, f)
			}
		}
		section(s.title, flags)
	}
	var rest []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if !listed[f.Name] {
			rest = append(rest, f)
		}
	})
	section("Other", rest)
}

// printFlags lists every flag of fs, with its environment twin when env is set. Unlike
// flag.PrintDefaults it shows the twins, and which flags repeat.
func printFlags(w io.Writer, fs *flag.FlagSet, env bool) {
	fs.VisitAll(func(f *flag.Flag) { printFlag(w, f, env) })
}

func printFlag(w io.Writer, f *flag.Flag, env bool) {
	arg, usage := flag.UnquoteUsage(f)
	if arg != "" && !isBoolFlag(f) {
		arg = " " + arg
	} else {
		arg = ""
	}
	fmt.Fprintf(w, "  --%s%s\n", f.Name, arg)
	var notes []string
	if d := f.DefValue; d != "" && d != "0" && d != "0s" && d != "false" {
		notes = append(notes, fmt.Sprintf("default %s", d))
	}
	if isRepeatable(f) {
		notes = append(notes, "repeatable")
	}
	if env {
		notes = append(notes, "env "+envName(f.Name))
	}
	fmt.Fprintf(w, "      %s\n", usage)
	if len(notes) > 0 {
		fmt.Fprintf(w, "      (%s)\n", strings.Join(notes, "; "))
	}
}

func versionString() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}

// options is what the serve and seed flags fill in.
type options struct {
	cfg       gateway.Config
	logLevel  string
	logFormat string
	allowFile string // --allow-infohash-file, read into cfg.AllowInfoHashes by finish
}

// finish completes cfg from flags that name files.
func (o *options) finish() error {
	if o.allowFile == "" {
		return nil
	}
	hashes, err := gateway.ReadInfoHashFile(o.allowFile)
	if err != nil {
		return fmt.Errorf("allow-infohash-file: %v", err)
	}
	if len(hashes) == 0 {
		// An empty allowlist would mean "any": say so rather than open the gateway by mistake.
		return fmt.Errorf("allow-infohash-file %s: no infohashes in it", o.allowFile)
	}
	o.cfg.AllowInfoHashes = append(o.cfg.AllowInfoHashes, hashes...)
	return nil
}

// newFlagSet makes serve's flags (name "serve"), or seed's: serve's but the serveOnly ones.
func newFlagSet(name string, o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &o.cfg
	fs.String(configFlag, "", "read settings from this config `file` (one flag-name = value a line); the command line and the environment win over it")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "`address` for the API, pages, streams, webseed and websocket tracker")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "`address` of a listener of its own for /metrics (e.g. 127.0.0.1:9090); empty serves it on --http-addr")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "base `URL` viewers reach the gateway at behind a reverse proxy (default: each request's own)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "`folder` for downloaded data and piece state")
	fs.IntVar(&c.BTPort, "bt-port", c.BTPort, "TCP and uTP `port` for native BitTorrent peers (0 = any free port)")
	fs.BoolVar(&c.NoDHT, "no-dht", c.NoDHT, "turn the mainline DHT off")
	fs.BoolVar(&c.NoUPnP, "no-upnp", c.NoUPnP, "do not ask the router (UPnP/NAT-PMP) to forward the BitTorrent port")
	fs.IntVar(&c.WebRTCUDPPort, "webrtc-udp-port", c.WebRTCUDPPort, "one UDP `port` for all WebRTC peers (0 = an ephemeral port per peer)")
	fs.Var((*ipList)(&c.PublicIPs), "public-ip", "public `IP` to advertise to WebRTC peers behind NAT 1:1 (repeatable)")
	fs.Var((*iceList)(&c.ICEServers), "ice-server", "STUN/TURN `URL` for WebRTC, e.g. stun:stun.example.org:3478 or turn:user:pass@turn.example.org:3478 (repeatable; default none)")
	fs.BoolVar(&c.UploadSharing, "upload-sharing", c.UploadSharing, "with --upload-rate: send each piece to as few browsers as possible (super-seeding): browsers hear of the pieces no other browser holds, and pass them on")
	fs.Var((*byteRate)(&c.UploadRate), "upload-rate", "cap on all torrent data sent, to peers and over HTTP, in `bytes/s` (k, M, G suffixes; 0 = no cap)")
	fs.Var((*sizeFlag)(&c.CacheSize), "cache-size", "bound on downloaded data in `bytes` (k, M, G suffixes; 0 = unlimited): pieces of torrents nobody watches are evicted least recently used first")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "drop a downloaded torrent and its data when nobody watched it for this `duration` (0 = never; seeded files stay)")
	fs.Var((*originList)(&c.EmbedOrigins), "embed-origins", "`origin` whose pages may embed the player, e.g. https://blog.example.org (repeatable; default any site)")
	fs.Var((*originList)(&c.CORSOrigins), "cors-origins", "`origin` whose pages may read the API, streams and webseed cross-origin; listed origins may also add and delete with the admin token (repeatable; default * = any site, reading only)")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "`token` required as \"Authorization: Bearer <token>\" to delete torrents, and to add them under --allow-add token (default none: anyone may)")
	fs.StringVar(&c.AllowAdd, "allow-add", c.AllowAdd, "who may add torrents over the API (`mode`): any, token or none (default token with --admin-token, else any)")
	fs.Var((*stringList)(&c.AllowInfoHashes), "allow-infohash", "only this `infohash` (40 hex) may be added over the API and announced on the tracker, besides the gateway's own torrents (repeatable; default any)")
	fs.StringVar(&o.allowFile, "allow-infohash-file", o.allowFile, "`file` of allowed infohashes, one per line, # comments; adds to --allow-infohash")
	fs.Var((*stringList)(&c.TrustedProxies), "trusted-proxy", "`CIDR` of a reverse proxy whose X-Forwarded-For names the client IP for per-IP limits (repeatable; default none: the TCP peer is the client)")
	fs.IntVar(&c.MaxTorrents, "max-torrents", c.MaxTorrents, "most torrents the gateway holds; adding more over the API answers 503 (0 = no limit)")
	fs.IntVar(&c.MaxWSPerIP, "max-ws-per-ip", c.MaxWSPerIP, "most tracker websockets from one client IP; more are refused with 429 (0 = no limit)")
	fs.IntVar(&c.MaxSwarmsPerSocket, "max-swarms-per-socket", c.MaxSwarmsPerSocket, "most swarms one tracker websocket may announce in")
	fs.Int64Var(&c.MaxMessageBytes, "max-message-bytes", c.MaxMessageBytes, "largest tracker message in `bytes`; a larger one closes its websocket")
	fs.Float64Var(&c.MaxOffersPerSec, "max-offers-per-sec", c.MaxOffersPerSec, "WebRTC offers one tracker websocket may send per second; more are dropped with a failure reason (0 = no limit)")
	fs.IntVar(&c.MaxWebRTCPeers, "max-webrtc-peers", c.MaxWebRTCPeers, "most WebRTC peers of the gateway in all; over it the gateway declines browsers' offers")
	fs.IntVar(&c.MaxWebRTCPeersPerTorrent, "max-webrtc-peers-per-torrent", c.MaxWebRTCPeersPerTorrent, "most WebRTC peers of the gateway in one torrent; over it browsers use each other and the webseed (0 = only --max-webrtc-peers)")
	fs.StringVar(&c.IngestToken, "ingest-token", c.IngestToken, "`token` broadcasters send as \"Authorization: Bearer <token>\" to upload live segments (default none: live ingest off)")
	fs.Var((*stringList)(&c.Relays), "relay", "follow the live stream at this `URL` of another gateway (http(s)://host/live/<stream id>) over BitTorrent and serve it here; give one stream's URLs on several gateways as its sources (repeatable)")
	fs.DurationVar(&c.LiveWindow, "live-window", c.LiveWindow, "how far back each live stream's playlist and manifest reach (`duration`)")
	fs.Var((*sizeFlag)(&c.LiveMaxBytes), "live-max-bytes", "segment `bytes` each live stream keeps, in memory and in the data folder (k, M, G suffixes); the playlist, and so seeking back, reaches only as far as the kept segments")
	fs.IntVar(&c.MaxLiveStreams, "max-live-streams", c.MaxLiveStreams, "most live streams held at once; a new one over it answers 503 (ended streams make room)")
	fs.StringVar(&c.ClusterNATS, "cluster-nats", c.ClusterNATS, "join the cluster on this existing NATS (`URL`s, comma-separated; nats://user:password@host:4222)")
	fs.StringVar(&c.ClusterCreds, "cluster-creds", c.ClusterCreds, "NATS credentials `file` for --cluster-nats")
	fs.StringVar(&c.ClusterListen, "cluster-listen", c.ClusterListen, "run an embedded NATS taking the other gateways' routes on this `address` (host:port), and join the cluster with them")
	fs.Var((*stringList)(&c.ClusterRoutes), "cluster-routes", "another gateway's --cluster-listen `address` to route to (repeatable; this node's own may be listed, so all nodes can share one list)")
	fs.StringVar(&c.ClusterSecret, "cluster-secret", c.ClusterSecret, "shared `secret` the embedded NATS servers authenticate each other with (required with --cluster-listen)")
	fs.StringVar(&c.NodeName, "node-name", c.NodeName, "this gateway's `name` in the cluster: letters, digits, - and _ (default: the host name)")
	fs.StringVar(&c.ClusterAdvertise, "cluster-advertise", c.ClusterAdvertise, "this gateway's HTTP base `URL` as the other gateways reach it (default: http:// and --http-addr, with the host name when it listens on all addresses)")
	fs.BoolVar(&c.Demo, "demo", c.Demo, "seed the built-in demo video")
	fs.StringVar(&c.FFprobe, "ffprobe", c.FFprobe, "ffprobe `binary` (a name in PATH or a path) that learns what media files hold, for players to choose how to play (empty: off)")
	fs.StringVar(&c.FFmpeg, "ffmpeg", c.FFmpeg, "ffmpeg `binary` that makes HLS (remux or transcode) for browsers that cannot play a file as it is (empty: off)")
	fs.StringVar(&c.Transcode, "transcode", c.Transcode, "HLS the gateway makes (`mode`): on (remux and transcode), remux (video copied, only audio converted) or off (files play as they are)")
	fs.IntVar(&c.MaxTranscodes, "max-transcodes", c.MaxTranscodes, "most ffmpeg jobs at once; over it viewers are asked to try again or play the file as it is")
	fs.StringVar(&c.HWAccel, "hwaccel", c.HWAccel, "hardware H.264 `encoder` for transcodes: vaapi, nvenc or qsv (default: software, libx264, also the fallback)")
	fs.StringVar(&o.logLevel, "log-level", o.logLevel, "log `level`: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", o.logFormat, "log `format`: text or json")
	fs.StringVar(&c.AccessLog, "access-log", c.AccessLog, "HTTP access log (`mode`): on (page views, API changes, websockets and errors at info; media, uploads and polling at debug), all (every request at info) or off")
	if name != "seed" {
		return fs
	}
	seed := flag.NewFlagSet(name, flag.ContinueOnError)
	seed.SetOutput(stderr)
	fs.VisitAll(func(f *flag.Flag) {
		if !serveOnly[f.Name] {
			seed.Var(f.Value, f.Name, f.Usage)
		}
	})
	return seed
}

// parseFlags parses args, then fills every flag not given on the command line from its
// environment twin, and every flag given in neither place from the config file (--config or
// SWARMGATE_CONFIG), if any. Repeatable flags take comma-separated values from the environment
// and one line per value in the file; a source that sets a repeatable flag replaces the lower
// ones' values, it does not add to them.
func parseFlags(fs *flag.FlagSet, args []string, env func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return explainParseError(fs, err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name := envName(f.Name)
		v := env(name)
		if v == "" {
			return
		}
		given[f.Name] = true
		values := []string{v}
		if isRepeatable(f) {
			values = strings.Split(v, ",")
		}
		for _, v := range values {
			if err := f.Value.Set(strings.TrimSpace(v)); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %s", name, v, explain(f, err)))
			}
		}
	})
	if f := fs.Lookup(configFlag); f != nil && f.Value.String() != "" {
		errs = append(errs, applyConfigFile(fs, f.Value.String(), func(name string) bool { return given[name] }))
	}
	return errors.Join(errs...)
}

// flagValueError is how the flag package reports a bad value on the command line.
var flagValueError = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-([^:]+): (.*)$`)

// flagUndefined is how the flag package reports a flag it does not know.
var flagUndefined = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)

// explainParseError turns the flag package's "parse error" into what the flag wants, and its
// "flag provided but not defined: -x" into an *unknownFlagError.
func explainParseError(fs *flag.FlagSet, err error) error {
	if m := flagUndefined.FindStringSubmatch(err.Error()); m != nil {
		return &unknownFlagError{m[1]}
	}
	m := flagValueError.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	f := fs.Lookup(m[2])
	if f == nil {
		return err
	}
	return fmt.Errorf("--%s %q: %s", f.Name, m[1], explain(f, errors.New(m[3])))
}

// unknownFlagError is a flag on the command line that the command has not.
type unknownFlagError struct{ name string }

func (e *unknownFlagError) Error() string { return "unknown flag --" + e.name }

type repeatable interface{ repeatable() }

type ipList []string

func (l *ipList) String() string { return strings.Join(*l, ",") }
func (l *ipList) repeatable()    {}
func (l *ipList) Set(s string) error {
	if net.ParseIP(s) == nil {
		return fmt.Errorf("not an IP address")
	}
	*l = append(*l, s)
	return nil
}

// originList collects --embed-origins; Config.Validate says which one is malformed.
type originList []string

func (l *originList) String() string { return strings.Join(*l, ",") }
func (l *originList) repeatable()    {}
func (l *originList) Set(s string) error {
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			*l = append(*l, o)
		}
	}
	return nil
}

// stringList collects a repeatable flag as given; Config.Validate says which entry is wrong.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) repeatable()    {}
func (l *stringList) Set(s string) error {
	if s = strings.TrimSpace(s); s == "" {
		return fmt.Errorf("empty value")
	}
	*l = append(*l, s)
	return nil
}

type byteRate int64

func (r *byteRate) String() string { return strconv.FormatInt(int64(*r), 10) }
func (r *byteRate) Set(s string) error {
	n, err := gateway.ParseByteRate(s)
	if err != nil {
		return err
	}
	*r = byteRate(n)
	return nil
}

type sizeFlag int64

// String writes the size as it would be typed: 10G rather than 10737418240.
func (b *sizeFlag) String() string {
	n := int64(*b)
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"k", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
func (b *sizeFlag) Set(s string) error {
	n, err := gateway.ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = sizeFlag(n)
	return nil
}

type iceList []gateway.ICEServer

func (l *iceList) repeatable() {}
func (l *iceList) String() string {
	var urls []string
	for _, s := range *l {
		urls = append(urls, s.URLs...)
	}
	return strings.Join(urls, ",")
}
func (l *iceList) Set(s string) error {
	srv, err := gateway.ParseICEServer(s)
	if err != nil {
		return err
	}
	*l = append(*l, srv)
	return nil
}

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("log-format %q: want text or json", format)
	}
}

// afterStart is what a command does once the gateway is up, before it serves (seed hashes here).
type afterStart func(g *gateway.Gateway, base string, publicIPs, paths []string, stdout, stderr io.Writer) error

func serve(args []string, then afterStart, stdout, stderr io.Writer) int {
	o := options{cfg: gateway.DefaultConfig(), logLevel: "info", logFormat: "text"}
	name := "serve"
	if then != nil {
		name = "seed"
	}
	fs := newFlagSet(name, &o, stderr)
	// The flag package would print the whole usage after every mistake; one line says more.
	fs.SetOutput(io.Discard)
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if then != nil {
				fmt.Fprint(stdout, seedHelp, seedIntoHelp)
			} else {
				fmt.Fprint(stdout, serveHelp)
			}
			fmt.Fprint(stdout, settingsHelp)
			printFlagSections(stdout, fs)
			return exitOK
		}
		if u := (*unknownFlagError)(nil); errors.As(err, &u) && then != nil && serveOnly[u.name] {
			err = fmt.Errorf("--%s is serve's only: seed's gateway holds no live streams and no demo", u.name)
		}
		fmt.Fprintf(stderr, "swarmgate: %s: %v\nRun \"swarmgate %s --help\" for the flags.\n", name, err, name)
		return exitUsage
	}
	switch {
	case then == nil && fs.NArg() > 0:
		fmt.Fprintf(stderr, "swarmgate: serve takes no arguments, got %q\nRun \"swarmgate serve --help\" for the flags.\n", fs.Args())
		return exitUsage
	case then != nil && fs.NArg() == 0:
		fmt.Fprint(stderr, "swarmgate: seed needs at least one PATH\nRun \"swarmgate seed --help\" for how to use it.\n")
		return exitUsage
	}
	for _, p := range fs.Args() {
		if _, err := os.Stat(p); err != nil {
			fmt.Fprintln(stderr, "swarmgate:", err)
			return exitUsage
		}
	}
	log, err := newLogger(o.logLevel, o.logFormat, stderr)
	if err == nil {
		err = o.finish()
	}
	if err == nil {
		err = o.cfg.Validate()
	}
	// Validate and New name Config fields; the user set flags (or their file and env twins).
	flags := configFlags(fs, &o.cfg)
	if err != nil {
		printError(stderr, inFlagWords(err, flags))
		return exitUsage
	}

	g, err := gateway.New(o.cfg, log)
	if err != nil {
		printError(stderr, inFlagWords(liveFlagNames(err), flags))
		return exitFailure
	}
	// The first signal drains; a second one means "now". One channel, registered once and before
	// anyone is told the gateway is up, so that no signal ever meets the default action (which
	// kills without a word). A signal while seed hashes ends the gateway once hashing is done.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan struct{})
	defer close(served)
	go func() {
		select {
		case s := <-sigs:
			log.Info("swarmgate draining; signal again to stop at once", "signal", s.String(), "timeout", o.cfg.ShutdownTimeout)
			cancel()
		case <-served:
			return
		}
		select {
		case <-sigs:
			fmt.Fprintln(stderr, "swarmgate: forced exit")
			os.Exit(exitFailure)
		case <-served:
		}
	}()
	base := localBaseURL(o.cfg, g.Addr())
	log.Info("swarmgate listening", "url", base, "bt", g.BTAddr(), "version", versionString())
	if then != nil {
		if err := then(g, base, o.cfg.PublicIPs, fs.Args(), stdout, stderr); err != nil {
			g.Close()
			fmt.Fprintln(stderr, "swarmgate:", err)
			return exitFailure
		}
	}

	start := time.Now()
	if err := g.Serve(ctx); err != nil {
		fmt.Fprintln(stderr, "swarmgate:", err)
		return exitFailure
	}
	log.Info("swarmgate stopped", "uptime", time.Since(start).Round(time.Second))
	return exitOK
}

// localBaseURL is the URL to print for people on this machine.
func localBaseURL(cfg gateway.Config, addr net.Addr) string {
	if cfg.PublicURL != "" {
		return strings.TrimSuffix(cfg.PublicURL, "/")
	}
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}
