// Package gateway wires swarmgate together: the anacrolix BitTorrent client that talks to native
// swarms, the registry of torrents it serves, the HTTP API and byte streams (echo), the websocket
// tracker (package signaling) and the WebRTC stack (package bridge) that turns browser data channels
// into peer connections.
//
// Demand drives fetching. A torrent with viewers (HTTP readers or WebRTC peers) has its files fetched
// ahead in order from the native swarm, so that the bytes viewers need next are already here when
// they ask; a torrent nobody watches only fetches what a reader asks for.
package gateway
