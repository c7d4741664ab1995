// Package cli is swarmgate's command line: flags with environment twins, the serve, seed and
// version commands, logging setup and signal handling. It holds no gateway logic.
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
	"runtime/debug"
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
func Run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, nil, stdout, stderr)
	case "seed":
		return serve(args, seedPaths, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "swarmgate", versionString())
		return exitOK
	case "health":
		return health(args, stdout, stderr)
	case "help":
		usage(stderr)
		return exitOK
	default:
		fmt.Fprintf(stderr, "swarmgate: unknown command %q\n\n", cmd)
		usage(stderr)
		return exitUsage
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  swarmgate [serve] [flags]          run the gateway (the default command)
  swarmgate seed [flags] PATH...     hash files or folders, seed them and print their magnets
  swarmgate version                  print the version
  swarmgate health [--url URL]       exit 0 if the gateway answers /readyz (container health checks)

Run "swarmgate serve --help" for the flags. Every flag has an environment twin:
--http-addr is SWARMGATE_HTTP_ADDR, and so on.
`)
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
}

func newFlagSet(name string, o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &o.cfg
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "`address` for the API, pages, streams, webseed and websocket tracker")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "base `URL` viewers reach the gateway at behind a reverse proxy (default: each request's own)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "`folder` for downloaded data and piece state")
	fs.IntVar(&c.BTPort, "bt-port", c.BTPort, "TCP and uTP `port` for native BitTorrent peers (0 = any free port)")
	fs.BoolVar(&c.NoDHT, "no-dht", c.NoDHT, "turn the mainline DHT off")
	fs.BoolVar(&c.NoUPnP, "no-upnp", c.NoUPnP, "do not ask the router (UPnP/NAT-PMP) to forward the BitTorrent port")
	fs.IntVar(&c.WebRTCUDPPort, "webrtc-udp-port", c.WebRTCUDPPort, "one UDP `port` for all WebRTC peers (0 = an ephemeral port per peer)")
	fs.Var((*ipList)(&c.PublicIPs), "public-ip", "public `IP` to advertise to WebRTC peers behind NAT 1:1 (repeatable)")
	fs.Var((*iceList)(&c.ICEServers), "ice-server", "STUN/TURN `URL` for WebRTC, e.g. stun:stun.example.org:3478 or turn:user:pass@turn.example.org:3478 (repeatable; default none)")
	fs.Var((*byteRate)(&c.UploadRate), "upload-rate", "cap on all torrent data sent, to peers and over HTTP, in `bytes/s` (k, M, G suffixes; 0 = no cap)")
	fs.Var((*sizeFlag)(&c.CacheSize), "cache-size", "bound on downloaded data in `bytes` (k, M, G suffixes; 0 = unlimited): pieces of torrents nobody watches are evicted least recently used first")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "drop a downloaded torrent and its data when nobody watched it for this `duration` (0 = never; seeded files stay)")
	fs.Var((*originList)(&c.EmbedOrigins), "embed-origins", "`origin` whose pages may embed the player, e.g. https://blog.example.org (repeatable; default any site)")
	fs.BoolVar(&c.Demo, "demo", c.Demo, "seed the built-in demo video")
	fs.StringVar(&o.logLevel, "log-level", o.logLevel, "log `level`: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", o.logFormat, "log `format`: text or json")
	return fs
}

// parseFlags parses args, then fills every flag not given on the command line from its
// environment twin. Repeatable flags take comma-separated values from the environment.
func parseFlags(fs *flag.FlagSet, args []string, env func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := env(name)
		if v == "" {
			return
		}
		values := []string{v}
		if _, ok := f.Value.(repeatable); ok {
			values = strings.Split(v, ",")
		}
		for _, v := range values {
			if err := f.Value.Set(strings.TrimSpace(v)); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

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
	fs.Usage = func() {
		w := fs.Output()
		if then != nil {
			fmt.Fprintln(w, "Usage: swarmgate seed [flags] PATH...")
		} else {
			fmt.Fprintln(w, "Usage: swarmgate serve [flags]")
		}
		fmt.Fprintln(w, "\nFlags (each also read from SWARMGATE_<FLAG>, e.g. SWARMGATE_HTTP_ADDR):")
		fs.PrintDefaults()
	}
	// The flag package would print the whole usage after every mistake; one line says more.
	fs.SetOutput(io.Discard)
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		fs.SetOutput(stderr)
		if errors.Is(err, flag.ErrHelp) {
			fs.Usage()
			return exitOK
		}
		fmt.Fprintf(stderr, "swarmgate: %v\nRun \"swarmgate %s --help\" for the flags.\n", err, name)
		return exitUsage
	}
	switch {
	case then == nil && fs.NArg() > 0:
		fmt.Fprintf(stderr, "swarmgate: serve takes no arguments, got %q\n", fs.Args())
		return exitUsage
	case then != nil && fs.NArg() == 0:
		fmt.Fprintln(stderr, "swarmgate: seed needs at least one PATH")
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
		err = o.cfg.Validate()
	}
	if err != nil {
		fmt.Fprintln(stderr, "swarmgate:", err)
		return exitUsage
	}

	g, err := gateway.New(o.cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "swarmgate:", err)
		return exitFailure
	}
	base := localBaseURL(o.cfg, g.Addr())
	log.Info("swarmgate listening", "url", base, "bt", g.BTAddr(), "version", versionString())
	if then != nil {
		if err := then(g, base, o.cfg.PublicIPs, fs.Args(), stdout, stderr); err != nil {
			g.Close()
			fmt.Fprintln(stderr, "swarmgate:", err)
			return exitFailure
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first signal drains; a second one means "now".
		<-ctx.Done()
		stop()
		force := make(chan os.Signal, 1)
		signal.Notify(force, os.Interrupt, syscall.SIGTERM)
		<-force
		fmt.Fprintln(stderr, "swarmgate: forced exit")
		os.Exit(exitFailure)
	}()
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
