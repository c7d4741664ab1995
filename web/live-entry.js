// The live page's one bundle (static/vendor/live.min.js, built by copy-vendor.mjs with esbuild from
// the pinned packages): hls.js, and p2p-media-loader's hls.js engine, which shares segments
// between viewers over WebRTC.
export { default as Hls } from 'hls.js'
export { HlsJsP2PEngine } from 'p2p-media-loader-hlsjs'
