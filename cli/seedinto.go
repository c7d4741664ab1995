package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// seedIntoHelp is seed's help for its other way: into a gateway that runs already.
const seedIntoHelp = `
Into a gateway that runs already (the demo, a service), instead of starting one:

  swarmgate seed --gateway http://localhost:8080 [--token TOKEN] PATH...

asks that gateway to hash and seed each PATH in place. The gateway reads the files itself, so each
PATH must be where the gateway's machine sees it (inside a container: its path there), and the
gateway must have an admin token: --token, or SWARMGATE_ADMIN_TOKEN. It prints each one's magnet
and watch URL and returns; the gateway keeps serving them, across restarts too.
`

// wantsGateway reports whether seed's arguments name a running gateway (--gateway).
func wantsGateway(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name := strings.TrimLeft(a, "-")
		if strings.HasPrefix(a, "-") && (name == "gateway" || strings.HasPrefix(name, "gateway=")) {
			return true
		}
	}
	return false
}

// seedInto asks a running gateway to seed paths of its machine (POST /api/torrents {"path"}).
func seedInto(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	gw := fs.String("gateway", "", "`URL` of the running gateway")
	token := fs.String("token", os.Getenv(envPrefix+"ADMIN_TOKEN"), "the gateway's admin `token` (default: $SWARMGATE_ADMIN_TOKEN)")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "swarmgate: seed: %v\nRun \"swarmgate seed --help\" for how to use it.\n", err)
		return exitUsage
	}
	base := strings.TrimSuffix(*gw, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		fmt.Fprintf(stderr, "swarmgate: seed: --gateway %q: want the gateway's http(s) URL, e.g. http://localhost:8080\n", *gw)
		return exitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, "swarmgate: seed needs at least one PATH\nRun \"swarmgate seed --help\" for how to use it.\n")
		return exitUsage
	}
	if *token == "" {
		fmt.Fprint(stderr, "swarmgate: seed: --gateway needs the gateway's admin token: --token or SWARMGATE_ADMIN_TOKEN\n")
		return exitUsage
	}
	client := &http.Client{Timeout: 6 * time.Hour} // the gateway hashes before it answers
	for _, p := range fs.Args() {
		abs, err := filepath.Abs(p)
		if err != nil {
			fmt.Fprintln(stderr, "swarmgate:", err)
			return exitUsage
		}
		fmt.Fprintf(stderr, "asking %s to hash and seed %s…\n", base, abs)
		v, err := postPath(client, base, *token, abs)
		if err != nil {
			fmt.Fprintf(stderr, "swarmgate: seed %s: %v\n", p, err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "%s\n  magnet: %s\n  watch:  %s/watch/%s\n", v.Name, v.Magnet, base, v.InfoHash)
	}
	return exitOK
}

type seededView struct {
	InfoHash string `json:"infohash"`
	Name     string `json:"name"`
	Magnet   string `json:"magnet"`
	Error    string `json:"error"`
}

func postPath(client *http.Client, base, token, path string) (seededView, error) {
	body, _ := json.Marshal(map[string]string{"path": path})
	req, err := http.NewRequest(http.MethodPost, base+"/api/torrents", bytes.NewReader(body))
	if err != nil {
		return seededView{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		return seededView{}, err
	}
	defer res.Body.Close()
	var v seededView
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&v); err != nil {
		return v, fmt.Errorf("the gateway answered %s, not the torrent: %v", res.Status, err)
	}
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusCreated {
		if v.Error == "" {
			v.Error = res.Status
		}
		return v, errors.New(v.Error)
	}
	return v, nil
}
