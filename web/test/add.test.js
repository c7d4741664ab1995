// Unit tests of static/add.js, the home page's reading of its box, run by `make test`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { addRequestFor, liveLine } from '../static/add.js'
import { formatRate } from '../static/format.js'

const IH = '0123456789abcdef0123456789abcdef01234567'

test('addRequestFor tells a magnet, an infohash and a .torrent URL apart', () => {
  assert.deepEqual(addRequestFor(`  magnet:?xt=urn:btih:${IH}&dn=x `), { body: { magnet: `magnet:?xt=urn:btih:${IH}&dn=x` } })
  assert.deepEqual(addRequestFor(IH.toUpperCase()), { body: { infohash: IH } })
  assert.deepEqual(addRequestFor('https://example.org/a.torrent'), { body: { url: 'https://example.org/a.torrent' } })
  assert.deepEqual(addRequestFor('HTTP://example.org/a.torrent'), { body: { url: 'HTTP://example.org/a.torrent' } })
  assert.match(addRequestFor('').error, /Paste/)
  assert.match(addRequestFor('abc123').error, /40 hex digits; this has 6/)
  assert.match(addRequestFor('ftp://example.org/a.torrent').error, /not a magnet link/)
})

test('liveLine says state, rate and viewers, and less once a stream ended', () => {
  assert.equal(liveLine({ state: 'live', bitrate_bps: 8_000_000, browser_peers: 3, window: { seconds: 59.6 } }, formatRate),
    `live · ${formatRate(1_000_000)} · 3 watching in browsers · 60 s to rewind`)
  assert.equal(liveLine({ state: 'ended', bitrate_bps: 8000, browser_peers: 0, window: { seconds: 0 } }, formatRate), 'ended')
})
