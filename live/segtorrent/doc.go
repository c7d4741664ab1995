// Package segtorrent puts live segments on BitTorrent: each segment a gateway accepts (uploaded by
// a broadcaster, or fetched by a relay) is seeded as the single-file torrent its signed entry
// names (live.SegmentInfo), and relays fetch segments by that infohash from other gateways'
// clients. Torrents implements live.SegmentFetcher for a live.Relay, and its Seed is what a
// live.Origin's OnSegment hook calls.
//
// Segments are seeded from memory, from the bytes the live window already holds: no disk, and no
// copy. Fetched segments are filled in memory too, piece by piece, anacrolix checking each piece
// against the info's hashes and the info against the signed infohash. Only the newest segments of
// each stream stay in the client (Config.Keep media segments, with the init segment heading
// them): a relay starts a few segments behind the live edge, so older torrents would only cost
// connections and announces.
//
// The package owns no goroutine and no client: the caller's anacrolix client holds the torrents
// and drops them when it closes. It knows nothing of the gateway or HTTP. The name says
// "torrent", not "swarm": a stream's swarm is its browsers' WebRTC swarm (see the gateway),
// while these are the segments' own torrents between gateways.
package segtorrent
