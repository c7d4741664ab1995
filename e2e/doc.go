// Package e2e tests swarmgate whole, as its users meet it: a real gateway (gateway.New serving on
// loopback with its real HTTP API, tracker and pages, started by internal/gatewaytest) between
// real peers and real browsers. Nothing is mocked:
//
//   - native BitTorrent peers are anacrolix clients over TCP, and WebRTC peers are pion peers that
//     join swarms through the gateway's tracker as a browser does (internal/peertest);
//   - browsers are headless Chromium (Debian's /usr/bin/chromium, driven over the DevTools
//     protocol with chromedp) running the gateway's own pages: webtorrent on the watch page,
//     hls.js with p2p-media-loader on the live page, embed.js on pages of another origin;
//   - video is made by ffmpeg: test files for the watch page, and live streams that
//     live.Broadcast uploads, signed, into the gateway (startLive).
//
// What it proves: a file that only a native seeder has reaches a WebRTC peer and plays in
// Chromium byte for byte, seeks, and is shared between two browsers (whose counts of the bytes
// from the gateway's peer match its own); a file only a browser seeds streams over HTTP; a page
// without WebRTC falls back to the webseed and a page that cannot play says why; what a gateway holds survives a restart; a live broadcast plays near its edge, ends
// with its signed end, reaches viewers through a relay gateway over BitTorrent, and is shared
// between viewers, who reject forged segments. Its benchmarks measure time to first frame and
// live latency with P2P on and off.
//
// All traffic stays on loopback. The tests are slow (each starts Chromium and, for live, ffmpeg);
// without chromium or ffmpeg they are skipped, except with CI=true, where that is a failure.
package e2e
