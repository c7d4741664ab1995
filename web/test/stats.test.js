// Unit tests of static/stats.js, the watch page's stats panel, run by `make test`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { browserSide, bufferedAhead, gatewaySide } from '../static/stats.js'

const zero = { gatewayPeers: 0, browserPeers: 0, webseedPeers: 0, fromGateway: 0, fromBrowsers: 0, fromWebseed: 0, uploaded: 0 }

test('browserSide: the /stream fallback is all gateway, not "0 B from the gateway"', () => {
  const s = browserSide(zero, 'stream')
  assert.match(s.fromGateway, /everything/)
  assert.doesNotMatch(s.fromBrowsers, /0 %/)
})

test('browserSide: the webseed counts as the gateway, and the browsers\' share is of all bytes', () => {
  const s = browserSide({ ...zero, fromGateway: 1024, fromWebseed: 3 * 1024, fromBrowsers: 1024, gatewayPeers: 1, browserPeers: 2, webseedPeers: 1 }, 'webtorrent')
  assert.equal(s.fromGateway, '4.0 KiB (3.0 KiB over its webseed)')
  assert.equal(s.fromBrowsers, '1.0 KiB (20 % of it)')
  assert.equal(s.peers, 'gateway 1 · browsers 2 · webseed 1')
  assert.equal(browserSide(zero, 'webtorrent').fromBrowsers, '0 B')
})

test('gatewaySide words peers, swarm rate and what the gateway holds', () => {
  const t = { state: 'downloading', progress: 0.426, peers: { native: 3, webrtc: 1 }, rates: { download: 2048, upload: 0 } }
  assert.deepEqual(gatewaySide(t), { peers: '3 native · 1 browser', download: '2.0 KiB/s', held: '43 %' })
  assert.equal(gatewaySide({ ...t, state: 'metadata' }).held, 'waiting for metadata')
  assert.equal(gatewaySide(undefined).peers, '–')
})

test('bufferedAhead finds the range under the playhead', () => {
  assert.equal(bufferedAhead([[0, 10], [20, 30]], 4), 6)
  assert.equal(bufferedAhead([[0, 10], [20, 30]], 15), 0)
  assert.ok(Math.abs(bufferedAhead([[0, 10], [20, 30]], 19.9) - 10.1) < 1e-9, "a range just ahead counts (seeking lands a hair before it)")
  assert.equal(bufferedAhead([], 0), 0)
})

test('browserSide: HLS counts segments from browsers and the gateway', () => {
  const b = browserSide({ fromGateway: 3 << 20, fromBrowsers: 1 << 20, uploaded: 2 << 20, browserPeers: 2, rejected: 1 }, 'hls')
  assert.match(b.mode, /HLS/)
  assert.match(b.fromBrowsers, /25 %/)
  assert.match(b.peers, /browsers 2 · 1 forged/)
  assert.match(browserSide({}, 'hls-native').fromGateway, /everything/)
})
