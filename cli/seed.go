package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/swarmgate/swarmgate/gateway"
)

// seedPaths hashes each path into its own torrent, seeds it in place and prints how to reach it.
func seedPaths(g *gateway.Gateway, base string, paths []string, stdout, stderr io.Writer) error {
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
		if addr := g.BTAddr(); addr != nil {
			m.Params["x.pe"] = []string{addr.String()}
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
