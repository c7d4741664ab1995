package gateway

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"

	"github.com/anacrolix/torrent"

	"github.com/swarmgate/swarmgate/registry"
)

// demoVideo is 30 s of test pattern made by scripts/make-demo-media.sh, so a new user sees a
// working torrent at once.
//
//go:embed demo/swarmgate-demo.mp4
var demoVideo []byte

const demoName = "swarmgate-demo.mp4"

// addDemo writes the demo video into the data dir (once) and seeds it.
func (g *Gateway) addDemo() (*torrent.Torrent, error) {
	dir := filepath.Join(g.cfg.DataDir, "demo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, demoName)
	if old, err := os.ReadFile(p); err != nil || !bytes.Equal(old, demoVideo) {
		if err := os.WriteFile(p, demoVideo, 0o644); err != nil {
			return nil, fmt.Errorf("writing %s: %w", p, err)
		}
	}
	parent, info, err := HashPath(p, nil)
	if err != nil {
		return nil, err
	}
	// The demo comes from configuration (--demo), so it is not saved as a torrent to restore.
	return g.torrents.AddLocal(registry.Source{SeedDir: parent, Ephemeral: true}, info)
}
