package cli

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/swarmgate/swarmgate/gateway"
)

// seedPaths hashes each path into its own torrent, seeds it in place and prints how to reach it.
func seedPaths(g *gateway.Gateway, base string, publicIPs, paths []string, stdout, stderr io.Writer) error {
	for _, p := range paths {
		bar := newProgressBar(stderr, p)
		parent, info, err := gateway.HashPath(p, bar.update)
		bar.finish()
		if err != nil {
			return fmt.Errorf("hashing %s: %w", p, err)
		}
		t, err := g.AddLocal(parent, info)
		if err != nil {
			return fmt.Errorf("seeding %s: %w", p, err)
		}
		ih := t.InfoHash().HexString()
		m := t.Metainfo().Magnet(nil, info)
		m.Trackers = []string{gateway.TrackerURL(base)}
		m.Params = map[string][]string{"ws": {base + "/webseed/" + ih + "/"}}
		if addr := peerAddr(g, base, publicIPs); addr != "" {
			m.Params["x.pe"] = []string{addr}
		}
		fmt.Fprintf(stdout, "%s\n  magnet: %s\n  watch:  %s/watch/%s\n", info.BestName(), m.String(), base, ih)
	}
	return nil
}

// progressBar draws hashing progress on one terminal line, at most ten times a second.
type progressBar struct {
	w     io.Writer
	label string
	last  time.Time
	drawn bool
}

func newProgressBar(w io.Writer, label string) *progressBar {
	return &progressBar{w: w, label: label}
}

func (b *progressBar) update(done, total int64) {
	now := time.Now()
	if done < total && now.Sub(b.last) < 100*time.Millisecond {
		return
	}
	b.last = now
	const width = 30
	frac := float64(done) / float64(max(total, 1))
	n := int(frac * width)
	fmt.Fprintf(b.w, "\rhashing %s [%s%s] %3.0f%% %s/%s", b.label,
		strings.Repeat("#", n), strings.Repeat(" ", width-n), frac*100, byteSize(done), byteSize(total))
	b.drawn = true
}

func (b *progressBar) finish() {
	if b.drawn {
		fmt.Fprintln(b.w)
	}
}

func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// peerAddr is where native peers can reach the gateway, for a magnet's x.pe: the public IP if one
// is configured, else the listener's own address, else the host people reach the HTTP side at.
func peerAddr(g *gateway.Gateway, base string, publicIPs []string) string {
	addr, ok := g.BTAddr().(*net.TCPAddr)
	if !ok {
		return ""
	}
	host := addr.IP.String()
	switch {
	case len(publicIPs) > 0:
		host = publicIPs[0]
	case addr.IP.IsUnspecified():
		u, err := url.Parse(base)
		if err != nil {
			return ""
		}
		host = u.Hostname()
	}
	return net.JoinHostPort(host, strconv.Itoa(addr.Port))
}
