package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmgate/swarmgate/piececache"
)

// Add adds the torrent spec describes, or returns the one already there (whose peers then get
// spec's peers to try). It reports whether the torrent is new. src says how it was added, which
// is what a restart replays; an Ephemeral source is not saved.
func (r *Registry) Add(spec *torrent.TorrentSpec, src Source) (*torrent.Torrent, bool, error) {
	if r.closed() {
		return nil, false, ErrClosed
	}
	if e, ok := r.Get(spec.InfoHash); ok {
		// Adding again may name new peers; they are worth trying.
		addDirectPeers(e.t, spec.PeerAddrs)
		if src.FetchAll && !e.fetchAll.Swap(true) {
			if !e.src.Ephemeral {
				r.saveState()
			}
			r.DemandChanged()
		}
		return e.t, false, nil
	}
	// anacrolix would add the spec's peers as trusted (never banned): add them ourselves.
	direct := spec.PeerAddrs
	spec.PeerAddrs = nil
	t, isNew, err := r.cfg.Client.AddTorrentSpec(spec)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrBadTorrent, err)
	}
	addDirectPeers(t, direct)
	src.InfoHash = t.InfoHash().HexString()
	if src.Added.IsZero() {
		src.Added = time.Now().UTC()
	}
	ne := &Entry{t: t, added: src.Added, loaded: time.Now(), src: src, linger: r.cfg.ViewerLinger, playable: r.cfg.Playable, directPeers: direct}
	ne.fetchAll.Store(src.FetchAll)
	// Idleness counts from the last viewer a saved state knows of, or from now.
	if src.LastWatched.IsZero() {
		ne.lastWatched.Store(time.Now().UnixNano())
	} else {
		ne.lastWatched.Store(src.LastWatched.UnixNano())
	}
	e, added := r.put(ne)
	if added {
		ih := t.InfoHash()
		// anacrolix calls this (in a goroutine) for every chunk it could not store; by default it
		// would stop downloading the torrent for good.
		t.SetOnWriteChunkError(func(err error) {
			if !e.hasDiskErr.Load() { // the storage recorded its own errors already
				r.WriteFailed(ih, err)
			}
			e.pauseDownload(time.Now())
		})
		if r.cfg.Added != nil {
			r.cfg.Added(e)
		}
		r.log.Info("torrent added", "infohash", src.InfoHash, "name", t.Name())
		if !src.Ephemeral {
			r.saveState()
		}
		r.watchMetadata(e)
		if src.FetchAll {
			r.DemandChanged()
		}
	}
	return t, isNew && added, nil
}

func (r *Registry) watchMetadata(e *Entry) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		select {
		case <-e.t.GotInfo():
			if info := e.t.Info(); info != nil {
				if err := CheckInfo(info); err != nil {
					r.log.Warn("dropping torrent with unsafe metadata", "infohash", e.t.InfoHash().HexString(), "err", err)
					r.Remove(e.t.InfoHash(), false)
					return
				}
			}
			r.log.Info("metadata", "infohash", e.t.InfoHash().HexString(), "name", e.t.Name(), "length", e.t.Length())
			e.gotInfo()
			// A viewer that came before the metadata (a browser's peer conn, as the page opens)
			// was looked at when nothing could be fetched yet: look again now rather than at the
			// next tick, up to a second later.
			r.DemandChanged()
			if !e.src.Ephemeral {
				if err := r.saveMetainfo(e.t); err != nil {
					r.log.Error("saving metainfo; a restart will need peers for it again", "infohash", e.t.InfoHash().HexString(), "err", err)
				}
			}
		case <-e.t.Closed():
		case <-r.stop:
		}
	}()
}

// Remove drops a torrent (nothing happens if it is not there); with deleteData, data the
// registry owns goes too (files seeded in place never do).
func (r *Registry) Remove(ih metainfo.Hash, deleteData bool) error {
	e, ok := r.take(ih)
	if !ok {
		return nil
	}
	e.stopPrefetch()
	if r.cfg.Removed != nil {
		r.cfg.Removed(e)
	}
	e.t.Drop()
	r.log.Info("torrent removed", "infohash", ih.HexString(), "data", deleteData)
	if !e.src.Ephemeral {
		r.saveState()
		if err := os.Remove(r.metainfoPath(ih)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.log.Warn("removing metainfo", "err", err)
		}
	}
	if deleteData && e.OwnsData() {
		if err := os.RemoveAll(piececache.TorrentDir(r.cfg.DataDir, ih)); err != nil {
			return fmt.Errorf("removing data: %w", err)
		}
	}
	return nil
}

// AddLocal seeds files that are complete on disk under src.SeedDir, as described by info. The
// files stay where they are and are never deleted; the torrent is restored after a restart
// while they are there. A source never added before has its pieces marked complete without
// hashing (the caller just hashed them); a restored one keeps the state it had.
func (r *Registry) AddLocal(src Source, info *metainfo.Info) (*torrent.Torrent, error) {
	if src.SeedDir == "" {
		return nil, errors.New("AddLocal: the source has no SeedDir")
	}
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		return nil, err
	}
	mi := &metainfo.MetaInfo{InfoBytes: infoBytes}
	ih := mi.HashInfoBytes()
	if _, err := os.Stat(src.SeedDir); err != nil {
		return nil, err
	}
	if src.Added.IsZero() {
		for i := range info.NumPieces() {
			if err := r.cfg.Completion.Set(metainfo.PieceKey{InfoHash: ih, Index: i}, true); err != nil {
				return nil, err
			}
		}
	}
	if !src.Ephemeral {
		if err := r.writeMetainfo(ih, mi); err != nil {
			return nil, fmt.Errorf("saving metainfo: %w", err)
		}
	}
	spec, err := torrent.TorrentSpecFromMetaInfoErr(mi)
	if err != nil {
		return nil, err
	}
	spec.Storage = r.localStorage(src.SeedDir)
	t, _, err := r.Add(spec, src)
	return t, err
}

// CheckInfo refuses info dictionaries whose paths would escape the torrent's folder, or whose
// piece hashes do not match its files (CheckPieceCount). Errors match ErrBadTorrent.
//
// Control characters in names are kept, not refused: the names are inside the info dictionary
// the infohash is taken of, so the gateway cannot rewrite them and stay in the swarm, and real
// torrents carry them (macOS names a folder's custom icon file "Icon\r"). They stay as they are
// in the metainfo, on disk and in the API's JSON (escaped there), where they are only data;
// whatever is written as lines of text must clean them.
func CheckInfo(info *metainfo.Info) error {
	if info.PieceLength <= 0 {
		return fmt.Errorf("%w: piece length must be positive", ErrBadTorrent)
	}
	if err := CheckPieceCount(info); err != nil {
		return err
	}
	if !safePathPart(info.BestName()) {
		return fmt.Errorf("%w: torrent name %q is not a safe file name", ErrBadTorrent, info.BestName())
	}
	for _, f := range info.UpvertedFiles() {
		for _, part := range f.BestPath() {
			if !safePathPart(part) {
				return fmt.Errorf("%w: file path %q is not safe", ErrBadTorrent, strings.Join(f.BestPath(), "/"))
			}
		}
	}
	return nil
}

// CheckPieceCount refuses an info whose number of pieces is not the number of its v1 piece
// hashes. anacrolix and the piece cache size their per-piece state by Info.NumPieces, which for
// a hybrid (v1 + v2) torrent counts the v2 file tree's lengths, and nothing checks those against
// the v1 hashes: a 228-byte .torrent claiming a 32 TiB file made the gateway allocate 80 GB and
// die. Errors match ErrBadTorrent.
func CheckPieceCount(info *metainfo.Info) error {
	if !info.HasV1() {
		return fmt.Errorf("%w: only BitTorrent v1 and hybrid torrents are supported", ErrBadTorrent)
	}
	if len(info.Pieces)%20 != 0 {
		return fmt.Errorf("%w: piece hashes of %d bytes, not a multiple of 20", ErrBadTorrent, len(info.Pieces))
	}
	if info.NumPieces() != len(info.Pieces)/20 {
		return fmt.Errorf("%w: the file tree makes %d pieces, the piece hashes %d", ErrBadTorrent, info.NumPieces(), len(info.Pieces)/20)
	}
	return nil
}
