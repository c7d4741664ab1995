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
// Disk is bounded by the piece cache (package piececache): it evicts least-recently-used pieces of
// torrents nobody watches, which the gateway tells it (disk.go does the rest: re-syncing anacrolix
// after evictions, pausing a torrent whose writes fail, dropping idle torrents). Files seeded in
// place are never in the cache.
package gateway
