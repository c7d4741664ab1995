package gateway

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"github.com/swarmgate/swarmgate/live"
)

// Live segments over BitTorrent. Every segment a gateway accepts (uploaded by a broadcaster or
// fetched by a relay) is seeded as the single-file torrent its signed entry names, from memory,
// so that relays (serve --relay) can fetch it by infohash. Only the newest segments stay in the
// client: a relay starts a few segments behind the live edge, so older torrents would only cost
// connections and announces.

// segmentTorrentsKept is how many media segments per stream stay seeded (with the init segment
// heading the oldest of them): about a minute at 2 s segments.
const segmentTorrentsKept = 30

// segmentPeerRetry is how often a fetch offers its peers to anacrolix again: a peer that did
// not have the segment a moment ago (a relay still fetching it) may have it now.
const segmentPeerRetry = time.Second

// segmentTorrents holds the live segments' torrents in the gateway's client.
type segmentTorrents struct {
	client *torrent.Client
	keep   int

	mu       sync.Mutex
	stored   map[metainfo.Hash]*segmentStorage
	byStream map[live.StreamID][]live.Entry // seeded, in stream order
}

func newSegmentTorrents(client *torrent.Client) *segmentTorrents {
	return &segmentTorrents{
		client: client, keep: segmentTorrentsKept,
		stored:   map[metainfo.Hash]*segmentStorage{},
		byStream: map[live.StreamID][]live.Entry{},
	}
}

// seed makes seg available over BitTorrent (it came with its bytes, checked by the window), and
// drops the stream's torrents that fell behind.
func (st *segmentTorrents) seed(id live.StreamID, seg live.Segment) error {
	if seg.Data == nil {
		return nil
	}
	st.mu.Lock()
	_, fetched := st.stored[seg.InfoHash]
	st.mu.Unlock()
	if !fetched {
		mi, err := live.SegmentMetaInfo(id, seg.Kind, seg.Seq, seg.Data)
		if err != nil {
			return err
		}
		if mi.HashInfoBytes() != seg.InfoHash {
			return fmt.Errorf("live %s segment %d: torrent %s, its entry says %s", seg.Kind, seg.Seq, mi.HashInfoBytes().HexString(), seg.InfoHash.HexString())
		}
		s := newSegmentStorage(seg.Data)
		st.mu.Lock()
		st.stored[seg.InfoHash] = s
		st.mu.Unlock()
		st.client.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: seg.InfoHash, InfoBytes: mi.InfoBytes, Storage: s})
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	list := append(st.byStream[id], seg.Entry)
	keep := keptSegments(list, st.keep)
	for _, e := range list {
		if _, ok := keep[e.InfoHash]; !ok {
			st.dropLocked(e.InfoHash)
		}
	}
	kept := list[:0]
	for _, e := range list {
		if _, ok := keep[e.InfoHash]; ok {
			kept = append(kept, e)
		}
	}
	st.byStream[id] = kept
	return nil
}

// keptSegments is what of a stream's seeded segments (in stream order) stays: the newest keep
// media segments, and the init segments heading them.
func keptSegments(list []live.Entry, keep int) map[metainfo.Hash]struct{} {
	out := map[metainfo.Hash]struct{}{}
	media := 0
	i := len(list) - 1
	for ; i >= 0 && media < keep; i-- {
		out[list[i].InfoHash] = struct{}{}
		if list[i].Kind == live.KindMedia {
			media++
		}
	}
	// The init heading the oldest kept media segment, unless one was kept already after it.
	for ; i >= 0; i-- {
		if list[i].Kind == live.KindInit {
			out[list[i].InfoHash] = struct{}{}
			break
		}
	}
	return out
}

func (st *segmentTorrents) dropLocked(ih metainfo.Hash) {
	delete(st.stored, ih)
	if t, ok := st.client.Torrent(ih); ok {
		t.Drop()
	}
}

// FetchSegment fetches e's torrent from peers. anacrolix checks each piece against the info's
// hashes, and the info against e's (signed) infohash.
func (st *segmentTorrents) FetchSegment(ctx context.Context, e live.Entry, peers func() []string) ([]byte, error) {
	st.mu.Lock()
	s, ok := st.stored[e.InfoHash]
	if !ok {
		s = newSegmentStorage(nil)
		s.want = e
		st.stored[e.InfoHash] = s
	}
	st.mu.Unlock()
	t, _ := st.client.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: e.InfoHash, Storage: s})
	retry := time.NewTicker(segmentPeerRetry)
	defer retry.Stop()
	offer := func() {
		p := peers()
		infos := make([]torrent.PeerInfo, 0, len(p))
		for _, a := range p {
			infos = append(infos, torrent.PeerInfo{Addr: torrent.StringAddr(a), Source: torrent.PeerSourceDirect, Trusted: true})
		}
		t.AddPeers(infos)
	}
	offer()
	gotInfo := false
	for {
		if !gotInfo {
			select {
			case <-t.GotInfo():
				gotInfo = true
				if err := s.openErr(); err != nil {
					return nil, err
				}
				t.DownloadAll()
				continue
			case <-retry.C:
				offer()
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("%s segment %d: no peer gave its torrent's info in time (%w)", e.Kind, e.Seq, ctx.Err())
			case <-t.Closed():
				return nil, fmt.Errorf("%s segment %d: its torrent was dropped", e.Kind, e.Seq)
			}
		}
		select {
		case <-t.Complete().On():
			return s.bytes(), nil
		case <-retry.C:
			offer()
		case <-ctx.Done():
			return nil, fmt.Errorf("%s segment %d: %d of %d bytes in time (%w)", e.Kind, e.Seq, t.BytesCompleted(), e.Size, ctx.Err())
		case <-t.Closed():
			return nil, fmt.Errorf("%s segment %d: its torrent was dropped", e.Kind, e.Seq)
		}
	}
}

// DropSegment forgets a fetched segment the relay did not keep.
func (st *segmentTorrents) DropSegment(e live.Entry) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, kept := range st.byStream[e.Stream] {
		if kept.InfoHash == e.InfoHash {
			return
		}
	}
	st.dropLocked(e.InfoHash)
}

// segmentStorage is one segment's bytes in memory: given (seeding) or filled by anacrolix
// (fetching), piece by piece.
type segmentStorage struct {
	want live.Entry // for a fetch: what the info must describe

	mu   sync.RWMutex
	data []byte
	done []bool
	err  error // why the info was refused
}

func newSegmentStorage(data []byte) *segmentStorage { return &segmentStorage{data: data} }

func (s *segmentStorage) OpenTorrent(_ context.Context, info *metainfo.Info, _ metainfo.Hash) (storage.TorrentImpl, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := info.NumPieces()
	if s.data == nil {
		// The info matches the signed infohash, so its size is the broadcaster's; still, check
		// before allocating what a peer's info says.
		if info.TotalLength() != int64(s.want.Size) || info.Name != live.SegmentName(s.want.Kind, s.want.Seq) {
			s.err = fmt.Errorf("%s segment %d: its torrent describes %q of %d bytes, the entry %d bytes", s.want.Kind, s.want.Seq, info.Name, info.TotalLength(), s.want.Size)
			return storage.TorrentImpl{}, s.err
		}
		s.data = make([]byte, info.TotalLength())
		s.done = make([]bool, n)
	} else {
		s.done = make([]bool, n)
		for i := range s.done {
			s.done[i] = true
		}
	}
	return storage.TorrentImpl{
		Piece: func(p metainfo.Piece) storage.PieceImpl { return segmentPiece{s, p.Index(), p.Offset(), p.Length()} },
		Close: func() error { return nil },
	}, nil
}

func (s *segmentStorage) openErr() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.err
}

func (s *segmentStorage) bytes() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.data
}

type segmentPiece struct {
	s           *segmentStorage
	index       int
	off, length int64
}

func (p segmentPiece) ReadAt(b []byte, off int64) (int, error) {
	p.s.mu.RLock()
	defer p.s.mu.RUnlock()
	if off >= p.length {
		return 0, fmt.Errorf("read at %d beyond piece of %d bytes", off, p.length)
	}
	n := copy(b, p.s.data[p.off+off:p.off+p.length])
	if n < len(b) {
		return n, fmt.Errorf("short read: %d of %d bytes", n, len(b))
	}
	return n, nil
}

func (p segmentPiece) WriteAt(b []byte, off int64) (int, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if off+int64(len(b)) > p.length {
		return 0, fmt.Errorf("write of %d bytes at %d beyond piece of %d bytes", len(b), off, p.length)
	}
	return copy(p.s.data[p.off+off:], b), nil
}

func (p segmentPiece) MarkComplete() error {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.s.done[p.index] = true
	return nil
}

func (p segmentPiece) MarkNotComplete() error {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.s.done[p.index] = false
	return nil
}

func (p segmentPiece) Completion() storage.Completion {
	p.s.mu.RLock()
	defer p.s.mu.RUnlock()
	return storage.Completion{Ok: true, Complete: p.s.done[p.index]}
}

// startRelays follows each stream named by --relay, grouping the URLs of one stream as its
// sources.
func (g *Gateway) startRelays() error {
	var order []live.StreamID
	sources := map[live.StreamID][]string{}
	for _, raw := range g.cfg.Relays {
		_, id, err := live.ParseStreamURL(raw)
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		if _, ok := sources[id]; !ok {
			order = append(order, id)
		}
		sources[id] = append(sources[id], raw)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-g.stop
		cancel()
	}()
	for _, id := range order {
		rc := live.DefaultRelayConfig()
		rc.Stream, rc.Sources, rc.Origin, rc.Fetcher = id, sources[id], g.live, g.segments
		r, err := live.NewRelay(rc, g.rootLog)
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		if err := g.live.Follow(id, r.Status); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		g.log.Info("relaying live stream", "stream", id, "sources", sources[id])
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			r.Run(ctx)
		}()
	}
	return nil
}

// btPort is the port of the BitTorrent listener, 0 if none.
func (g *Gateway) btPort() int {
	if a, ok := g.BTAddr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}
