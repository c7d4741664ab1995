package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// The data dir keeps what the gateway serves across restarts:
//
//	state.json                 the torrents and how each was added
//	metainfo/<infohash>.torrent each torrent's metainfo once known, so a restart needs no peers
//	torrents/<infohash>/        downloaded data; piece completion lives beside it (bolt/sqlite)
const (
	stateFile   = "state.json"
	metainfoDir = "metainfo"
)

// source is how a torrent was added, which is what a restart replays.
type source struct {
	InfoHash string    `json:"infohash"`
	Magnet   string    `json:"magnet,omitempty"`
	SeedDir  string    `json:"seed_dir,omitempty"` // seeded in place from files under this folder
	Added    time.Time `json:"added"`
	// LastWatched is when a viewer was last seen, for --idle-timeout.
	LastWatched time.Time `json:"last_watched,omitzero"`
	// ephemeral sources (the demo) are re-created by configuration, not restored.
	ephemeral bool
}

type savedState struct {
	Version  int      `json:"version"`
	Torrents []source `json:"torrents"`
}

const stateVersion = 1

// saveState writes the registry atomically (temp file + rename), so a crash leaves the old or the
// new state, never half of one.
func (g *Gateway) saveState() {
	g.stateMu.Lock()
	defer g.stateMu.Unlock()
	st := savedState{Version: stateVersion, Torrents: []source{}}
	for _, e := range g.torrents.list() {
		if !e.src.ephemeral {
			src := e.src
			src.LastWatched = time.Unix(0, e.lastWatched.Load()).UTC()
			st.Torrents = append(st.Torrents, src)
		}
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err == nil {
		err = writeFileAtomic(filepath.Join(g.cfg.DataDir, stateFile), b)
	}
	if err != nil {
		g.log.Error("saving state; torrents added since the last save will not survive a restart", "err", err)
	}
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

func (g *Gateway) metainfoPath(ih metainfo.Hash) string {
	return filepath.Join(g.cfg.DataDir, metainfoDir, ih.HexString()+".torrent")
}

// saveMetainfo keeps a torrent's info dictionary once known.
func (g *Gateway) saveMetainfo(t *torrent.Torrent) error {
	p := g.metainfoPath(t.InfoHash())
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	mi := t.Metainfo()
	if len(mi.InfoBytes) == 0 {
		return errors.New("no info bytes yet")
	}
	b, err := bencodeMetainfo(&mi)
	if err != nil {
		return err
	}
	return writeFileAtomic(p, b)
}

// restore re-adds what the last run served. A torrent that cannot come back (its seeded folder is
// gone, its metainfo is corrupt) is logged and left out; the others still load.
func (g *Gateway) restore() error {
	b, err := os.ReadFile(filepath.Join(g.cfg.DataDir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s is corrupt (%v); move it away to start empty", stateFile, err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("%s has version %d, this gateway reads %d", stateFile, st.Version, stateVersion)
	}
	sort.Slice(st.Torrents, func(i, j int) bool { return st.Torrents[i].Added.Before(st.Torrents[j].Added) })
	for _, src := range st.Torrents {
		if err := g.restoreOne(src); err != nil {
			g.log.Warn("not restoring torrent", "infohash", src.InfoHash, "err", err)
		}
	}
	return nil
}

func (g *Gateway) restoreOne(src source) error {
	ih, err := parseInfoHash(src.InfoHash)
	if err != nil {
		return err
	}
	var mi *metainfo.MetaInfo
	if loaded, err := metainfo.LoadFromFile(g.metainfoPath(ih)); err == nil {
		if loaded.HashInfoBytes() != ih {
			return fmt.Errorf("%s does not match its infohash", g.metainfoPath(ih))
		}
		mi = loaded
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if src.SeedDir != "" {
		if mi == nil {
			return errors.New("seeded in place but its metainfo is missing")
		}
		info, err := mi.UnmarshalInfo()
		if err != nil {
			return err
		}
		_, err = g.addLocal(src, &info)
		return err
	}
	spec := &torrent.TorrentSpec{}
	if src.Magnet != "" {
		if spec, err = torrent.TorrentSpecFromMagnetUri(src.Magnet); err != nil {
			return err
		}
	}
	spec.InfoHash = ih
	if mi != nil {
		spec.InfoBytes = mi.InfoBytes
	}
	_, _, err = g.addSpec(spec, src)
	return err
}

// localStorage keeps files that are seeded in place where they are, with piece state in the
// gateway's own completion store (so a restart does not hash them again).
func (g *Gateway) localStorage(dir string) storage.ClientImpl {
	return storage.NewFileOpts(storage.NewFileClientOpts{
		ClientBaseDir:   dir,
		PieceCompletion: sharedCompletion{g.completion},
	})
}

// sharedCompletion lends the gateway's completion store to a per-torrent storage without letting
// it close the store.
type sharedCompletion struct{ storage.PieceCompletion }

func (sharedCompletion) Close() error { return nil }
