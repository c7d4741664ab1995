package gateway

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmgate/swarmgate/piececache"
	"github.com/swarmgate/swarmgate/signaling"
)

// maxTorrentFileBytes bounds an uploaded .torrent; real ones with tens of thousands of pieces stay
// well under it.
const maxTorrentFileBytes = 8 << 20

// AddMagnet adds a torrent by magnet link. A magnet's x.pe peers are dialled at once.
func (g *Gateway) AddMagnet(uri string) (*torrent.Torrent, bool, error) {
	spec, err := magnetSpec(uri)
	if err != nil {
		return nil, false, err
	}
	return g.addSpec(spec, source{Magnet: uri})
}

func magnetSpec(uri string) (*torrent.TorrentSpec, error) {
	if !strings.HasPrefix(uri, "magnet:") {
		return nil, fmt.Errorf("%w: magnet must start with \"magnet:\"", ErrBadInput)
	}
	spec, err := torrent.TorrentSpecFromMagnetUri(uri)
	if err != nil {
		return nil, fmt.Errorf("%w: magnet: %v", ErrBadInput, err)
	}
	if spec.InfoHash.IsZero() {
		return nil, fmt.Errorf("%w: magnet has no BitTorrent v1 infohash (xt=urn:btih:...)", ErrBadInput)
	}
	return spec, nil
}

// AddInfoHash adds a torrent known only by its v1 infohash (40 hex digits); peers come from the
// DHT and from browsers.
func (g *Gateway) AddInfoHash(s string) (*torrent.Torrent, bool, error) {
	spec, err := infoHashSpec(s)
	if err != nil {
		return nil, false, err
	}
	return g.addSpec(spec, source{})
}

func infoHashSpec(s string) (*torrent.TorrentSpec, error) {
	ih, err := parseInfoHash(s)
	if err != nil {
		return nil, err
	}
	spec := &torrent.TorrentSpec{}
	spec.InfoHash = ih
	return spec, nil
}

// AddMetainfo adds a torrent from the bytes of a .torrent file.
func (g *Gateway) AddMetainfo(b []byte) (*torrent.Torrent, bool, error) {
	spec, err := metainfoSpec(b)
	if err != nil {
		return nil, false, err
	}
	return g.addSpec(spec, source{})
}

func metainfoSpec(b []byte) (*torrent.TorrentSpec, error) {
	var mi metainfo.MetaInfo
	if err := decodeBencode(b, &mi); err != nil {
		return nil, fmt.Errorf("%w: not a .torrent file: %v", ErrBadInput, err)
	}
	var info metainfo.Info
	if err := decodeBencode(mi.InfoBytes, &info); err != nil {
		return nil, fmt.Errorf("%w: .torrent info dictionary: %v", ErrBadInput, err)
	}
	if !info.HasV1() {
		return nil, fmt.Errorf("%w: only BitTorrent v1 and hybrid torrents are supported", ErrBadInput)
	}
	if err := checkInfo(&info); err != nil {
		return nil, err
	}
	spec, err := torrent.TorrentSpecFromMetaInfoErr(&mi)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	return spec, nil
}

// decodeBencode decodes all of b into v, refusing any string longer than b: the decoder allocates
// a string's declared length before reading it, and its own limit (128 MiB) let "134217727:", 10
// bytes, allocate 128 MiB.
func decodeBencode(b []byte, v any) error {
	d := bencode.NewDecoder(bytes.NewReader(b))
	d.MaxStrLen = int64(len(b))
	if err := d.Decode(v); err != nil {
		return err
	}
	return d.ReadEOF()
}

// addFromAPI adds spec for an API client: the allowlist and MaxTorrents apply (the operator's
// own torrents bypass both). A torrent already there is never refused.
func (g *Gateway) addFromAPI(spec *torrent.TorrentSpec, src source) (*torrent.Torrent, bool, error) {
	if !g.access.infoHashAllowed(spec.InfoHash) {
		g.refused.allowInfoHash.Add(1)
		return nil, false, fmt.Errorf("%w: %s is not on this gateway's allowlist", ErrForbidden, spec.InfoHash.HexString())
	}
	g.addMu.Lock()
	defer g.addMu.Unlock()
	if _, ok := g.torrents.get(spec.InfoHash); !ok && g.cfg.MaxTorrents > 0 && len(g.torrents.list()) >= g.cfg.MaxTorrents {
		g.refused.maxTorrents.Add(1)
		return nil, false, fmt.Errorf("%w: this gateway holds its maximum of %d torrents; retry later", ErrLimit, g.cfg.MaxTorrents)
	}
	return g.addSpec(spec, src)
}

// checkInfo refuses info dictionaries whose paths would escape the torrent's folder.
//
// Control characters in names are kept, not refused: the names are inside the info dictionary
// the infohash is taken of, so the gateway cannot rewrite them and stay in the swarm, and real
// torrents carry them (macOS names a folder's custom icon file "Icon\r"). They stay as they are
// in the metainfo, on disk and in the API's JSON (escaped there), where they are only data;
// everything the gateway writes as lines of text (the M3U playlists, page and oEmbed titles)
// goes through cleanName.
func checkInfo(info *metainfo.Info) error {
	if info.PieceLength <= 0 {
		return fmt.Errorf("%w: piece length must be positive", ErrBadInput)
	}
	if err := checkPieceCount(info); err != nil {
		return err
	}
	if !safePathPart(info.BestName()) {
		return fmt.Errorf("%w: torrent name %q is not a safe file name", ErrBadInput, info.BestName())
	}
	for _, f := range info.UpvertedFiles() {
		for _, part := range f.BestPath() {
			if !safePathPart(part) {
				return fmt.Errorf("%w: file path %q is not safe", ErrBadInput, strings.Join(f.BestPath(), "/"))
			}
		}
	}
	return nil
}

// checkPieceCount refuses an info whose number of pieces is not the number of its v1 piece hashes.
// anacrolix and the cache size their per-piece state by Info.NumPieces, which for a hybrid (v1 +
// v2) torrent counts the v2 file tree's lengths, and nothing checks those against the v1 hashes:
// a 228-byte .torrent claiming a 32 TiB file made the gateway allocate 80 GB and die.
func checkPieceCount(info *metainfo.Info) error {
	if !info.HasV1() {
		return fmt.Errorf("%w: only BitTorrent v1 and hybrid torrents are supported", ErrBadInput)
	}
	if len(info.Pieces)%20 != 0 {
		return fmt.Errorf("%w: piece hashes of %d bytes, not a multiple of 20", ErrBadInput, len(info.Pieces))
	}
	if info.NumPieces() != len(info.Pieces)/20 {
		return fmt.Errorf("%w: the file tree makes %d pieces, the piece hashes %d", ErrBadInput, info.NumPieces(), len(info.Pieces)/20)
	}
	return nil
}

func safePathPart(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\\x00")
}

func parseInfoHash(s string) (metainfo.Hash, error) {
	var ih metainfo.Hash
	if len(s) != 40 {
		return ih, fmt.Errorf("%w: infohash must be 40 hex digits, got %d characters", ErrBadInput, len(s))
	}
	if _, err := hex.Decode(ih[:], []byte(s)); err != nil {
		return ih, fmt.Errorf("%w: infohash must be 40 hex digits: %v", ErrBadInput, err)
	}
	return ih, nil
}

func (g *Gateway) addSpec(spec *torrent.TorrentSpec, src source) (*torrent.Torrent, bool, error) {
	select {
	case <-g.stop:
		return nil, false, ErrClosed
	default:
	}
	if e, ok := g.torrents.get(spec.InfoHash); ok {
		// Adding again may name new peers; they are worth trying.
		addDirectPeers(e.t, spec.PeerAddrs)
		return e.t, false, nil
	}
	// anacrolix would add the spec's peers as trusted (never banned): add them ourselves.
	direct := spec.PeerAddrs
	spec.PeerAddrs = nil
	t, isNew, err := g.client.AddTorrentSpec(spec)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	addDirectPeers(t, direct)
	src.InfoHash = t.InfoHash().HexString()
	if src.Added.IsZero() {
		src.Added = time.Now().UTC()
	}
	ne := &entry{t: t, added: src.Added, src: src, directPeers: direct}
	// Idleness counts from the last viewer a saved state knows of, or from now.
	if src.LastWatched.IsZero() {
		ne.lastWatched.Store(time.Now().UnixNano())
	} else {
		ne.lastWatched.Store(src.LastWatched.UnixNano())
	}
	e, added := g.torrents.put(ne)
	if added {
		ih := t.InfoHash()
		// anacrolix calls this (in a goroutine) for every chunk it could not store; by default it
		// would stop downloading the torrent for good.
		t.SetOnWriteChunkError(func(err error) {
			if !e.hasDiskErr.Load() { // the cache storage recorded its own errors already
				g.onWriteError(ih, err)
			}
			e.pauseDownload(time.Now())
		})
		g.tracker.Join(signaling.ID(t.InfoHash()))
		g.offers.wakeUp() // browsers in the swarm may have the data already
		g.log.Info("torrent added", "infohash", src.InfoHash, "name", t.Name())
		if !src.ephemeral {
			g.saveState()
		}
		g.watchMetadata(e)
	}
	return t, isNew && added, nil
}

func (g *Gateway) watchMetadata(e *entry) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		select {
		case <-e.t.GotInfo():
			if info := e.t.Info(); info != nil {
				if err := checkInfo(info); err != nil {
					g.log.Warn("dropping torrent with unsafe metadata", "infohash", e.t.InfoHash().HexString(), "err", err)
					g.remove(e.t.InfoHash(), false)
					return
				}
			}
			g.log.Info("metadata", "infohash", e.t.InfoHash().HexString(), "name", e.t.Name(), "length", e.t.Length())
			e.gotInfo()
			if !e.src.ephemeral {
				if err := g.saveMetainfo(e.t); err != nil {
					g.log.Error("saving metainfo; a restart will need peers for it again", "infohash", e.t.InfoHash().HexString(), "err", err)
				}
			}
		case <-e.t.Closed():
		case <-g.stop:
		}
	}()
}

// Remove drops a torrent; with deleteData its downloaded data goes too.
func (g *Gateway) Remove(ih metainfo.Hash, deleteData bool) error {
	e, ok := g.torrents.get(ih)
	if !ok {
		return fmt.Errorf("%w: no torrent %s", ErrNotFound, ih.HexString())
	}
	if deleteData && !e.ownsData() {
		return fmt.Errorf("%w: this torrent is seeded from files the gateway does not own; they are not deleted", ErrConflict)
	}
	return g.remove(ih, deleteData)
}

func (g *Gateway) remove(ih metainfo.Hash, deleteData bool) error {
	e, ok := g.torrents.remove(ih)
	if !ok {
		return nil
	}
	e.stopPrefetch()
	g.tracker.Leave(signaling.ID(ih))
	g.metrics.forget(e)
	e.t.Drop()
	g.log.Info("torrent removed", "infohash", ih.HexString(), "data", deleteData)
	if !e.src.ephemeral {
		g.saveState()
		if err := os.Remove(g.metainfoPath(ih)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			g.log.Warn("removing metainfo", "err", err)
		}
	}
	if deleteData && e.ownsData() {
		if err := os.RemoveAll(piececache.TorrentDir(filepath.Join(g.cfg.DataDir, torrentsDir), ih)); err != nil {
			return fmt.Errorf("removing data: %w", err)
		}
	}
	return nil
}

// AddLocal seeds files that are already complete on disk under parentDir, as described by info
// (built by HashPath). The files stay where they are and are never deleted by the gateway; the
// torrent is restored after a restart while the files are there.
func (g *Gateway) AddLocal(parentDir string, info *metainfo.Info) (*torrent.Torrent, error) {
	return g.addLocal(source{SeedDir: parentDir}, info)
}

func (g *Gateway) addLocal(src source, info *metainfo.Info) (*torrent.Torrent, error) {
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
		// Just hashed by HashPath: mark the pieces complete instead of hashing them twice. A
		// restored torrent keeps the state it had.
		for i := range info.NumPieces() {
			if err := g.completion.Set(metainfo.PieceKey{InfoHash: ih, Index: i}, true); err != nil {
				return nil, err
			}
		}
	}
	if !src.ephemeral {
		b, err := bencodeMetainfo(mi)
		if err == nil {
			err = os.MkdirAll(filepath.Dir(g.metainfoPath(ih)), 0o755)
		}
		if err == nil {
			err = writeFileAtomic(g.metainfoPath(ih), b)
		}
		if err != nil {
			return nil, fmt.Errorf("saving metainfo: %w", err)
		}
	}
	spec, err := torrent.TorrentSpecFromMetaInfoErr(mi)
	if err != nil {
		return nil, err
	}
	spec.Storage = g.localStorage(src.SeedDir)
	t, _, err := g.addSpec(spec, src)
	return t, err
}

func bencodeMetainfo(mi *metainfo.MetaInfo) ([]byte, error) {
	var b bytes.Buffer
	err := mi.Write(&b)
	return b.Bytes(), err
}
