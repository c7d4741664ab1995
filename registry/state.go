package registry

import (
	"bytes"
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

	"github.com/swarmgate/swarmgate/internal/atomicfile"
)

// StateDir keeps what the registry serves across restarts:
//
//	state.json                  the torrents and how each was added
//	metainfo/<infohash>.torrent each torrent's metainfo once known, so a restart needs no peers
const (
	stateFile   = "state.json"
	metainfoDir = "metainfo"
)

// Source is how a torrent was added, which is what a restart replays.
type Source struct {
	InfoHash string    `json:"infohash"`
	Magnet   string    `json:"magnet,omitempty"`
	SeedDir  string    `json:"seed_dir,omitempty"` // seeded in place from files under this folder
	Added    time.Time `json:"added"`
	// FetchAll fetches the whole torrent whether or not anyone watches: a file a browser shares
	// into the gateway, so that its page may close once the gateway holds it.
	FetchAll bool `json:"fetch_all,omitempty"`
	// LastWatched is when a viewer was last seen, for IdleTimeout.
	LastWatched time.Time `json:"last_watched,omitzero"`
	// Ephemeral sources (the demo) are re-created by configuration, not saved or restored, and
	// never dropped for idleness.
	Ephemeral bool `json:"-"`
}

type savedState struct {
	Version  int      `json:"version"`
	Torrents []Source `json:"torrents"`
}

const stateVersion = 1

// saveState writes the registry atomically (temp file + rename), so a crash leaves the old or the
// new state, never half of one.
func (r *Registry) saveState() {
	r.stateMu.Lock()
	defer r.stateMu.Unlock()
	st := savedState{Version: stateVersion, Torrents: []Source{}}
	for _, e := range r.List() {
		if !e.src.Ephemeral {
			src := e.src
			src.LastWatched = time.Unix(0, e.lastWatched.Load()).UTC()
			src.FetchAll = e.fetchAll.Load()
			st.Torrents = append(st.Torrents, src)
		}
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err == nil {
		err = atomicfile.Write(filepath.Join(r.cfg.StateDir, stateFile), b, stateFile+".tmp*")
	}
	if err != nil {
		r.log.Error("saving state; torrents added since the last save will not survive a restart", "err", err)
	}
}

func (r *Registry) metainfoPath(ih metainfo.Hash) string {
	return filepath.Join(r.cfg.StateDir, metainfoDir, ih.HexString()+".torrent")
}

func (r *Registry) writeMetainfo(ih metainfo.Hash, mi *metainfo.MetaInfo) error {
	var b bytes.Buffer
	if err := mi.Write(&b); err != nil {
		return err
	}
	p := r.metainfoPath(ih)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(p, b.Bytes(), filepath.Base(p)+".tmp*")
}

// saveMetainfo keeps a torrent's info dictionary once known.
func (r *Registry) saveMetainfo(t *torrent.Torrent) error {
	if _, err := os.Stat(r.metainfoPath(t.InfoHash())); err == nil {
		return nil
	}
	mi := t.Metainfo()
	if len(mi.InfoBytes) == 0 {
		return errors.New("no info bytes yet")
	}
	return r.writeMetainfo(t.InfoHash(), &mi)
}

// Restore re-adds what the last run served. A torrent that cannot come back (its seeded folder is
// gone, its metainfo is corrupt) is logged and left out; the others still load. An unreadable
// state.json is an error: starting empty would forget every torrent at the next save.
func (r *Registry) Restore() error {
	b, err := os.ReadFile(filepath.Join(r.cfg.StateDir, stateFile))
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
		if err := r.restoreOne(src); err != nil {
			r.log.Warn("not restoring torrent", "infohash", src.InfoHash, "err", err)
		}
	}
	return nil
}

func (r *Registry) restoreOne(src Source) error {
	var ih metainfo.Hash
	if err := ih.FromHexString(src.InfoHash); err != nil {
		return fmt.Errorf("infohash %q: %w", src.InfoHash, err)
	}
	var mi *metainfo.MetaInfo
	if loaded, err := metainfo.LoadFromFile(r.metainfoPath(ih)); err == nil {
		if loaded.HashInfoBytes() != ih {
			return fmt.Errorf("%s does not match its infohash", r.metainfoPath(ih))
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
		_, err = r.AddLocal(src, &info)
		return err
	}
	spec := &torrent.TorrentSpec{}
	if src.Magnet != "" {
		var err error
		if spec, err = torrent.TorrentSpecFromMagnetUri(src.Magnet); err != nil {
			return err
		}
	}
	spec.InfoHash = ih
	if mi != nil {
		spec.InfoBytes = mi.InfoBytes
	}
	_, _, err := r.Add(spec, src)
	return err
}

// localStorage keeps files that are seeded in place where they are, with piece state in the
// registry's completion store (so a restart does not hash them again).
func (r *Registry) localStorage(dir string) storage.ClientImpl {
	return storage.NewFileOpts(storage.NewFileClientOpts{
		ClientBaseDir:   dir,
		PieceCompletion: sharedCompletion{r.cfg.Completion},
	})
}

// sharedCompletion lends the completion store to a per-torrent storage without letting it close
// the store.
type sharedCompletion struct{ storage.PieceCompletion }

func (sharedCompletion) Close() error { return nil }
