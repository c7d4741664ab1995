// Package gateway wires swarmgate together: the anacrolix BitTorrent client that talks to native
// swarms, the registry of torrents it serves (package registry), the piece cache bounding the disk
// (package piececache), the websocket tracker (package signaling), the WebRTC stack that turns
// browser data channels into peer connections (package bridge), live streams (package live), and
// the HTTP API, pages and byte streams (echo) in front of them all.
//
// The gateway tells the registry what it sees: HTTP reads (/stream, /webseed), page views, WebRTC
// conns, the cache's write errors. The registry decides what to fetch from that. Browsers are
// sources too: when a torrent lacks metadata or watched pieces, the gateway offers to browsers in
// its tracker's swarm that announced data, instead of waiting for their offers (offers.go).
// disk.go re-syncs anacrolix after the cache evicts pieces and trims the cache to its capacity.
package gateway
