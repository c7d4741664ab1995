// Package gateway wires swarmgate together: the anacrolix BitTorrent client that talks to native
// swarms, the registry of torrents it serves, the HTTP API and byte streams (echo), the websocket
// tracker (package signaling) and the WebRTC stack (package bridge) that turns browser data channels
// into peer connections.
//
// Demand drives fetching. A torrent with viewers (HTTP readers or WebRTC peers) has its files fetched
// ahead in order from the native swarm, so that the bytes viewers need next are already here when
// they ask; a torrent nobody watches only fetches what a reader asks for. Opening a watch or embed
// page is not watching (link-preview bots open pages too): it fetches the metadata and the first
// pieces of the file the page would play, so that playback starts at once. Browsers are sources
// too: when a torrent lacks metadata or watched pieces, the gateway offers to browsers in its
// tracker's swarm that announced data, instead of waiting for their offers (offers.go).
//
// Disk is bounded by our own piece cache over anacrolix's file storage (cache.go), not by
// anacrolix's capacity-bounded resource storage: v1.61.0's capacity only throttles requests, and
// its LRU blob stores evict without knowing which torrents have viewers, replace the torrent's
// files with per-piece blobs and need a new dependency. The wrapper sees every piece read and
// write, reserves room before a piece's first write by evicting least-recently-used pieces of
// unwatched torrents (completion store first, then a punched hole), and leaves files seeded in
// place alone.
package gateway
