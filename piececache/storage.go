package piececache

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// Storage is the anacrolix storage of the cache's torrents: anacrolix's file storage under
// Config.Dir, each piece read and write seen by the cache.
type Storage struct {
	inner storage.ClientImplCloser
	c     *Cache
}

// Storage returns the storage to give anacrolix (ClientConfig.DefaultStorage, or per torrent).
func (c *Cache) Storage() *Storage {
	return &Storage{
		c: c,
		inner: storage.NewFileOpts(storage.NewFileClientOpts{
			ClientBaseDir:   c.cfg.Dir,
			TorrentDirMaker: func(dir string, _ *metainfo.Info, ih metainfo.Hash) string { return TorrentDir(dir, ih) },
			FilePathMaker:   filePathFor,
			PieceCompletion: c.cfg.Completion,
			UsePartFiles:    g.Some(false),
		}),
	}
}

// filePathFor is a file's path in its torrent's folder: the torrent's name, then the file's path.
func filePathFor(opts storage.FilePathMakerOpts) string {
	var parts []string
	if opts.Info.BestName() != metainfo.NoName {
		parts = append(parts, opts.Info.BestName())
	}
	return filepath.Join(append(parts, opts.File.BestPath()...)...)
}

func (s *Storage) Close() error { return s.inner.Close() }

func (s *Storage) OpenTorrent(ctx context.Context, info *metainfo.Info, ih metainfo.Hash) (storage.TorrentImpl, error) {
	if check := s.c.cfg.CheckInfo; check != nil {
		if err := check(info); err != nil {
			return storage.TorrentImpl{}, err
		}
	}
	impl, err := s.inner.OpenTorrent(ctx, info, ih)
	if err != nil {
		return impl, err
	}
	dir := TorrentDir(s.c.cfg.Dir, ih)
	ct := &cachedTorrent{ih: ih, info: info, pieces: make([]cachedPiece, info.NumPieces())}
	for _, fi := range info.UpvertedFiles() {
		ct.files = append(ct.files, cachedFile{
			path:   filepath.Join(dir, filePathFor(storage.FilePathMakerOpts{Info: info, File: &fi})),
			offset: fi.TorrentOffset,
			length: fi.Length,
		})
	}
	if err := s.c.open(ct); err != nil {
		return impl, err
	}
	innerPiece, innerClose := impl.Piece, impl.Close
	impl.Piece = func(p metainfo.Piece) storage.PieceImpl {
		return &pieceImpl{PieceImpl: innerPiece(p), c: s.c, t: ct, i: p.Index()}
	}
	impl.Close = func() error {
		s.c.forget(ct)
		if innerClose != nil {
			return innerClose()
		}
		return nil
	}
	return impl, nil
}

// pieceImpl is a piece of a cached torrent.
type pieceImpl struct {
	storage.PieceImpl
	c *Cache
	t *cachedTorrent
	i int
}

func (p *pieceImpl) state() *cachedPiece { return &p.t.pieces[p.i] }

func (p *pieceImpl) touch() { p.state().lastAccess.Store(time.Now().UnixNano()) }

func (p *pieceImpl) ReadAt(b []byte, off int64) (int, error) {
	s := p.state()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.evicted.Load() {
		return 0, ErrEvicted
	}
	p.touch()
	return p.PieceImpl.ReadAt(b, off)
}

func (p *pieceImpl) WriteTo(w io.Writer) (int64, error) {
	s := p.state()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.evicted.Load() {
		return 0, ErrEvicted
	}
	p.touch()
	if wt, ok := p.PieceImpl.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, io.NewSectionReader(p.PieceImpl, 0, p.t.info.Piece(p.i).Length()))
}

func (p *pieceImpl) WriteAt(b []byte, off int64) (int, error) {
	p.touch()
	s := p.state()
	for {
		if err := p.c.reserve(p.t, p.i); err != nil {
			p.writeError(err)
			return 0, err
		}
		s.mu.RLock()
		// Chosen as a victim between the reservation and the lock: reserve again, or the bytes
		// would be on disk uncounted.
		if s.resident.Load() {
			break
		}
		s.mu.RUnlock()
	}
	n, err := p.PieceImpl.WriteAt(b, off)
	if n > 0 {
		s.evicted.Store(false)
	}
	s.mu.RUnlock()
	if err != nil {
		err = fmt.Errorf("writing piece %d: %w", p.i, err)
		p.writeError(err)
		return n, err
	}
	if ok := p.c.cfg.OnWriteOK; ok != nil {
		ok(p.t.ih)
	}
	return n, nil
}

func (p *pieceImpl) writeError(err error) {
	if report := p.c.cfg.OnWriteError; report != nil {
		report(p.t.ih, err)
	}
}

// MarkComplete refuses a piece evicted after it was hashed: its bytes are gone. (anacrolix then
// still caches the piece as complete; reads of it fail with ErrEvicted until it re-syncs the
// completion, which a failed read makes it do.)
func (p *pieceImpl) MarkComplete() error {
	s := p.state()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.evicted.Load() {
		return ErrEvicted
	}
	return p.PieceImpl.MarkComplete()
}
