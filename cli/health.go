package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/swarmgate/swarmgate/gateway"
)

const healthHelp = `Usage: swarmgate health [--url URL] [--config FILE] [--timeout 5s]

Asks a gateway's /readyz and exits 0 when it answers 2xx (printing "healthy"), 1 when it does not
(draining for shutdown, down or unreachable): a container HEALTHCHECK without curl in the image.
By default it asks the gateway on this machine, on the port serve would listen on: from
SWARMGATE_HTTP_ADDR, else http-addr in the config file, else 8080.

Flags:
`

// health probes a gateway's /readyz (or any URL) and exits 0 when it answers 2xx: a container
// HEALTHCHECK without curl in the image.
func health(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	url := fs.String("url", "", "`URL` to probe (default: /readyz on the port serve would listen on, from SWARMGATE_HTTP_ADDR or the config file)")
	config := fs.String(configFlag, "", "the serve config `file` to take http-addr from (default: SWARMGATE_CONFIG)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this `duration`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, healthHelp)
			printFlags(stdout, fs, false)
			return exitOK
		}
		fmt.Fprintf(stderr, "swarmgate: health: %v\nRun \"swarmgate health --help\" for the flags.\n", explainParseError(fs, err))
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "swarmgate: health takes no arguments, got %q\nRun \"swarmgate health --help\" for the flags.\n", fs.Args())
		return exitUsage
	}
	if *url == "" {
		addr, err := serveHTTPAddr(*config, os.Getenv)
		if err != nil {
			fmt.Fprintln(stderr, "swarmgate:", err)
			return exitUsage
		}
		*url = defaultHealthURL(addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintln(stderr, "swarmgate:", err)
		return exitUsage
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "swarmgate: unhealthy:", err)
		return exitFailure
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		fmt.Fprintln(stderr, "swarmgate: unhealthy:", res.Status)
		return exitFailure
	}
	fmt.Fprintln(stdout, "healthy")
	return exitOK
}

// serveHTTPAddr is the address "swarmgate serve" would listen on, given the same environment and
// config file (configPath, or SWARMGATE_CONFIG when it is empty) and no command-line flags.
func serveHTTPAddr(configPath string, env func(string) string) (string, error) {
	o := options{cfg: gateway.DefaultConfig()}
	fs := newFlagSet("serve", &o, io.Discard)
	var args []string
	if configPath != "" {
		args = []string{"-" + configFlag, configPath}
	}
	if err := parseFlags(fs, args, env); err != nil {
		return "", err
	}
	return o.cfg.HTTPAddr, nil
}

// defaultHealthURL is /readyz of a gateway on this machine listening on httpAddr, or on :8080
// when httpAddr names no port.
func defaultHealthURL(httpAddr string) string {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil || port == "" || port == "0" {
		host, port = "", "8080"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz"
}
