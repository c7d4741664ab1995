package gateway

import (
	"crypto/sha1"
	"encoding/base64"
	"sync"

	"github.com/swarmgate/swarmgate/live"
	"github.com/swarmgate/swarmgate/signaling"
)

// The info_hash a live page announces on the tracker, as p2p-media-loader-core 2.3.1 derives
// it (src/utils/stream.ts, src/utils/peer.ts, src/p2p/tracker-client.ts), so that the tracker
// can let a gateway's own live swarms in under --allow-infohash:
//
//	index      = base64(sha1(bitrate-codecs-width-height-lang-channels-name-frameRate-videoRange))
//	swarm      = "v2-" + swarmId + "-" + type + "-" + index
//	info_hash  = utf8(base64(sha1(swarm)[:15]))  (20 ASCII bytes, not a binary SHA-1)
//
// p2p-media-loader-hlsjs makes one stream per hls.js level (type "main") and per audio track
// (type "secondary"). web/static/live.js sets swarmId to the stream id and plays
// /live/{stream}/index.m3u8, a media playlist (muxed audio and video, no variants): hls.js then
// makes a single level with bitrate 0 and no attributes, so "0--------" is the only index input
// the page can produce, and each live stream has exactly one swarm. Pinned against the
// JavaScript by live_swarm_test.go and, in Chromium, by e2e/live_forged_test.go.
const (
	liveSwarmProtocol = "v2"
	liveSwarmType     = "main"
	// liveSwarmLevel is generateStreamShortId's input for a level without metadata.
	liveSwarmLevel = "0--------"
)

// p2pmlStreamIndex is generateStreamShortId of a normalised level description.
func p2pmlStreamIndex(level string) string {
	h := sha1.Sum([]byte(level))
	return base64.StdEncoding.EncodeToString(h[:])
}

// p2pmlInfoHash is the tracker info_hash of p2p-media-loader's swarm for one stream of swarmID.
func p2pmlInfoHash(swarmID, streamType, index string) signaling.ID {
	h := sha1.Sum([]byte(liveSwarmProtocol + "-" + swarmID + "-" + streamType + "-" + index))
	var id signaling.ID
	base64.StdEncoding.Encode(id[:], h[:15]) // 15 bytes → exactly 20 characters, no padding
	return id
}

// LiveSwarmInfoHash is the tracker info_hash the live page of stream announces (20 ASCII bytes).
func LiveSwarmInfoHash(stream live.StreamID) signaling.ID {
	return p2pmlInfoHash(stream.String(), liveSwarmType, p2pmlStreamIndex(liveSwarmLevel))
}

// liveSwarms remembers each stream's info_hash (two SHA-1s) so that a refused announce costs a
// walk over the held stream ids, not a hash of each.
type liveSwarms struct {
	mu  sync.Mutex
	ids map[live.StreamID]signaling.ID
}

// holds says whether ih is the live swarm of one of streams.
func (s *liveSwarms) holds(streams []live.StreamID, ih signaling.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil || len(s.ids) > 4*len(streams)+16 { // forget streams long gone
		s.ids = make(map[live.StreamID]signaling.ID, len(streams))
	}
	for _, st := range streams {
		id, ok := s.ids[st]
		if !ok {
			id = LiveSwarmInfoHash(st)
			s.ids[st] = id
		}
		if id == ih {
			return true
		}
	}
	return false
}
