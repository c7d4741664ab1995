package segtorrent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/swarmgate/swarmgate/live"
)

// Torrents holds the live segments' torrents in one anacrolix client: the ones it seeds and the
// ones it fetches for a relay. It is safe for concurrent use.
type Torrents struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	stored   map[metainfo.Hash]*segmentStorage
	byStream map[live.StreamID][]live.Entry // seeded, in stream order
}

var _ live.SegmentFetcher = (*Torrents)(nil)

// New checks cfg and holds no torrent yet. log nil discards its logs.
func New(cfg Config, log *slog.Logger) (*Torrents, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Torrents{
		cfg: cfg, log: log.With("component", "segtorrent"),
		stored:   map[metainfo.Hash]*segmentStorage{},
		byStream: map[live.StreamID][]live.Entry{},
	}, nil
}

// Seed makes seg available over BitTorrent (it came with its bytes, checked by the window), and
// drops the stream's torrents that fell behind. A segment without its bytes is left alone; one
// whose bytes make another torrent than its entry names is refused.
func (st *Torrents) Seed(id live.StreamID, seg live.Segment) error {
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
		st.cfg.Client.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: seg.InfoHash, InfoBytes: mi.InfoBytes, Storage: s})
		st.log.Debug("seeding live segment", "stream", id, "kind", seg.Kind, "seq", seg.Seq, "infohash", seg.InfoHash.HexString())
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	list := append(st.byStream[id], seg.Entry)
	keep := keptSegments(list, st.cfg.Keep)
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

func (st *Torrents) dropLocked(ih metainfo.Hash) {
	delete(st.stored, ih)
	if t, ok := st.cfg.Client.Torrent(ih); ok {
		t.Drop()
	}
}

// FetchSegment fetches e's torrent from peers. anacrolix checks each piece against the info's
// hashes, and the info against e's (signed) infohash.
func (st *Torrents) FetchSegment(ctx context.Context, e live.Entry, peers func() []string) ([]byte, error) {
	st.mu.Lock()
	s, ok := st.stored[e.InfoHash]
	if !ok {
		s = newSegmentStorage(nil)
		s.want = e
		st.stored[e.InfoHash] = s
	}
	st.mu.Unlock()
	t, _ := st.cfg.Client.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: e.InfoHash, Storage: s})
	retry := time.NewTicker(st.cfg.PeerRetry)
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

// DropSegment forgets a fetched segment the relay did not keep (unless it is seeded).
func (st *Torrents) DropSegment(e live.Entry) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, kept := range st.byStream[e.Stream] {
		if kept.InfoHash == e.InfoHash {
			return
		}
	}
	st.dropLocked(e.InfoHash)
}
