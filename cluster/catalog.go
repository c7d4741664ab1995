package cluster

import (
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
)

// subjectTorrents carries catalog changes and snapshots.
const subjectTorrents = "sg.torrents"

// tombstoneTTL is how long a removal is remembered, so that an older snapshot does not bring
// the torrent back.
const tombstoneTTL = 24 * time.Hour

// Torrent is one entry of the cluster's catalog: what any node needs to take the torrent on
// when it becomes its home. Every node holds the whole catalog; it is small (a few hundred
// bytes a torrent) and every node republishes it when a node joins, so a restarted node catches
// up from whichever nodes are alive.
type Torrent struct {
	InfoHash string `json:"ih"` // 40 hex digits
	Magnet   string `json:"magnet,omitempty"`
	Metainfo []byte `json:"metainfo,omitempty"` // a .torrent, when the torrent came as one
	FetchAll bool   `json:"fetch_all,omitempty"`
	// Pinned names the node whose disk alone holds the data (files seeded in place): it is the
	// torrent's home while it is alive, whatever rendezvous says.
	Pinned  string `json:"pinned,omitempty"`
	Removed bool   `json:"removed,omitempty"`
	// Version orders changes (unix nanos when made); the latest wins everywhere.
	Version int64 `json:"v"`
}

type catalogMsg struct {
	Torrents []Torrent `json:"torrents"`
}

// PutTorrent records a change of the catalog here and tells every node. A zero Version is now.
func (n *Node) PutTorrent(t Torrent) {
	if t.Version == 0 {
		t.Version = time.Now().UnixNano()
	}
	if !n.mergeTorrents([]Torrent{t}) {
		return
	}
	n.publishCatalog([]Torrent{t})
}

// Torrents returns the catalog's torrents (not the removed ones).
func (n *Node) Torrents() []Torrent {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Torrent
	for _, t := range n.catalog {
		if !t.Removed {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b Torrent) int { return cmpString(a.InfoHash, b.InfoHash) })
	return out
}

// Torrent returns the catalog's entry for infohash (hex), removed ones included.
func (n *Node) Torrent(infoHash string) (Torrent, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.catalog[infoHash]
	return t, ok
}

// OnTorrent registers f, called with each entry that changed here (by PutTorrent or from
// another node), on NATS's goroutine or the caller's; f must be safe for concurrent use.
func (n *Node) OnTorrent(f func(Torrent)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.torrentWatchers = append(n.torrentWatchers, f)
}

// mergeTorrents takes the entries newer than what the catalog holds, tells the watchers, and
// reports whether any was new.
func (n *Node) mergeTorrents(ts []Torrent) bool {
	var changed []Torrent
	n.mu.Lock()
	for _, t := range ts {
		if len(t.InfoHash) != 40 {
			continue
		}
		if _, err := hex.DecodeString(t.InfoHash); err != nil {
			continue
		}
		if old, ok := n.catalog[t.InfoHash]; ok && old.Version >= t.Version {
			continue
		}
		n.catalog[t.InfoHash] = t
		var key [20]byte
		_, _ = hex.Decode(key[:], []byte(t.InfoHash))
		if t.Pinned != "" && !t.Removed {
			n.pins[key] = t.Pinned
		} else {
			delete(n.pins, key)
		}
		changed = append(changed, t)
	}
	watchers := slices.Clone(n.torrentWatchers)
	n.mu.Unlock()
	for _, t := range changed {
		for _, f := range watchers {
			f(t)
		}
	}
	return len(changed) > 0
}

func (n *Node) publishCatalog(ts []Torrent) {
	data, err := json.Marshal(catalogMsg{Torrents: ts})
	if err == nil {
		err = n.nc.Publish(subjectTorrents, data)
	}
	if err != nil {
		n.log.Warn("catalog change not sent", "err", err)
	}
}

// publishSnapshot sends the whole catalog, tombstones included: a node that joined learns it.
func (n *Node) publishSnapshot() {
	n.mu.Lock()
	ts := make([]Torrent, 0, len(n.catalog))
	for _, t := range n.catalog {
		ts = append(ts, t)
	}
	n.mu.Unlock()
	if len(ts) > 0 {
		n.publishCatalog(ts)
	}
}

func (n *Node) onCatalog(msg *nats.Msg) {
	var m catalogMsg
	if err := json.Unmarshal(msg.Data, &m); err != nil {
		n.log.Warn("bad catalog message", "err", err)
		return
	}
	n.mergeTorrents(m.Torrents)
}

// pruneTombstones forgets removals older than tombstoneTTL.
func (n *Node) pruneTombstones(now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ih, t := range n.catalog {
		if t.Removed && now.Sub(time.Unix(0, t.Version)) > tombstoneTTL {
			delete(n.catalog, ih) // a removal left no pin behind (mergeTorrents)
		}
	}
}

// pinnedHomeLocked is the live node a pinned torrent's data is on, if any. It is on the path of
// every tracker message (Home), so pins have a map of their own, by binary infohash. Caller
// holds n.mu.
func (n *Node) pinnedHomeLocked(key [20]byte) (string, bool) {
	pinned, ok := n.pins[key]
	if !ok {
		return "", false
	}
	if pinned == n.cfg.Name {
		return pinned, true
	}
	_, live := n.members[pinned]
	return pinned, live
}
