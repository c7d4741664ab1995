// Unit tests of static/playback.js, the player's decisions, run by `make test` with node's test
// runner. The browser tests in e2e/ play the same code in Chromium.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  Failure, HANDOVER_LEAD_S, MEDIA_ERR_DECODE, MEDIA_ERR_NETWORK, MEDIA_ERR_SRC_NOT_SUPPORTED, STALL_MS,
  handoverMoment, handoverTarget, leadAfter, nextLead, HANDOVER_MAX_LEAD_S, infohashFromPath, isInfohash, isPlayable, isStalled, mimeType,
  parseBoot, pickFile, playbackPath, sameURL, srtToVtt, subtitleTrack, subtitlesFor, swarmStats,
  videoErrorAction, waitingForMetadata, webseedURLs, wireKind, aloneTooLong, ALONE_MS
} from '../static/playback.js'

const IH = '0123456789abcdef0123456789abcdef01234567'

test('infohashFromPath reads /watch/<ih> and /embed/<ih>, lowercased', () => {
  assert.equal(infohashFromPath(`/watch/${IH}`), IH)
  assert.equal(infohashFromPath(`/embed/${IH.toUpperCase()}/`), IH)
  assert.equal(infohashFromPath('/watch/a%20b'), 'a b')
  for (const p of ['/', '/watch/', `/watch/${IH}/x`, `/live/${IH}`, '/watch/%zz']) {
    assert.equal(infohashFromPath(p), '', p)
  }
})

test('isInfohash takes 40 lowercase hex digits only', () => {
  assert.ok(isInfohash(IH))
  for (const s of ['', IH.slice(1), IH + '0', IH.toUpperCase(), 'g'.repeat(40)]) assert.ok(!isInfohash(s), s)
})

test('parseBoot reads a JSON object, and nothing else', () => {
  assert.deepEqual(parseBoot('{"config":{"tracker_url":"ws://x/announce"}}'), { config: { tracker_url: 'ws://x/announce' } })
  for (const text of [undefined, null, '', '{', 'null', '[1]', '7', '"s"']) assert.equal(parseBoot(text), null, String(text))
})

test('playbackPath: webtorrent needs a secure context with service workers', () => {
  assert.deepEqual(playbackPath({ secureContext: true, hasServiceWorker: true, origin: 'http://localhost:8080' }), { mode: 'webtorrent' })
  const insecure = playbackPath({ secureContext: false, hasServiceWorker: true, origin: 'http://192.168.1.2:8080' })
  assert.equal(insecure.mode, 'stream')
  assert.match(insecure.why, /http:\/\/192\.168\.1\.2:8080 is not a secure context/)
  assert.deepEqual(playbackPath({ secureContext: true, hasServiceWorker: false, origin: 'https://x' }), { mode: 'stream', why: 'No service worker in this browser' })
})

const file = (index, path, mime, length) => ({ index, path, mime, length, stream_url: `/stream/${IH}/${index}` })
const torrent = {
  files: [
    file(0, 'a/readme.txt', 'text/plain', 10),
    file(1, 'a/small.mp4', 'video/mp4', 100),
    file(2, 'a/big.mkv', 'video/x-matroska', 1000),
    file(3, 'a/song.mp3', 'audio/mpeg', 50)
  ]
}
const all = () => true

test('pickFile takes the file ?file= names', () => {
  assert.equal(pickFile(torrent, '3', all).index, 3)
  assert.throws(() => pickFile(torrent, '9', all), e => e instanceof Failure && /has no file 9 \(it has 4, numbered from 0\)/.test(e.message))
  assert.throws(() => pickFile(torrent, '1x', all), e => e instanceof Failure && /has no file 1x/.test(e.message))
  assert.throws(() => pickFile(torrent, '0', all), e => e instanceof Failure && /not video or audio \(text\/plain\)/.test(e.message) && e.link === `/stream/${IH}/0`)
})

test('pickFile prefers the largest file the browser plays, else the largest playable', () => {
  assert.equal(pickFile(torrent, null, all).index, 2)
  assert.equal(pickFile(torrent, null, f => f.mime === 'video/mp4').index, 1)
  assert.equal(pickFile(torrent, null, () => false).index, 2)
  assert.throws(() => pickFile({ files: [torrent.files[0]] }, null, all), e => e instanceof Failure && /no playable file/.test(e.message))
})

test('isPlayable and mimeType', () => {
  assert.deepEqual(torrent.files.map(isPlayable), [false, true, true, true])
  assert.equal(mimeType('video/mp4; codecs="avc1"'), 'video/mp4')
  assert.equal(mimeType('video/webm'), 'video/webm')
})

test('videoErrorAction: in webtorrent mode try /stream unless the type is known unplayable', () => {
  assert.equal(videoErrorAction({ mode: 'webtorrent', canPlay: 'maybe', code: MEDIA_ERR_DECODE }), 'stream')
  assert.equal(videoErrorAction({ mode: 'webtorrent', canPlay: 'probably', code: 2 }), 'stream')
  assert.equal(videoErrorAction({ mode: 'webtorrent', canPlay: '', code: MEDIA_ERR_SRC_NOT_SUPPORTED }), 'cannot-play')
  assert.equal(videoErrorAction({ mode: 'stream', canPlay: 'maybe', code: MEDIA_ERR_DECODE }), 'cannot-play')
  assert.equal(videoErrorAction({ mode: 'stream', canPlay: 'maybe', code: 2 }), 'fail') // network
})

test('videoErrorAction: the quick start\'s stream failing leaves it to webtorrent, unless it cannot decode', () => {
  const quick = { mode: 'webtorrent', source: 'stream', canPlay: 'maybe' }
  assert.equal(videoErrorAction({ ...quick, code: MEDIA_ERR_NETWORK }), 'webtorrent')
  assert.equal(videoErrorAction({ ...quick, code: MEDIA_ERR_DECODE }), 'cannot-play')
  assert.equal(videoErrorAction({ ...quick, code: MEDIA_ERR_SRC_NOT_SUPPORTED }), 'cannot-play')
  assert.equal(videoErrorAction({ ...quick, code: 1 }), 'fail') // aborted
  // After the hand-over, webtorrent's stream failing falls back to /stream as before.
  assert.equal(videoErrorAction({ mode: 'webtorrent', source: 'webtorrent', canPlay: 'maybe', code: MEDIA_ERR_DECODE }), 'stream')
})

test('sameURL compares a video\'s src with a stream_url, relative or absolute', () => {
  const base = 'http://127.0.0.1:8080/watch/' + IH
  assert.ok(sameURL(`http://127.0.0.1:8080/stream/${IH}/0`, `/stream/${IH}/0`, base))
  assert.ok(sameURL(`/stream/${IH}/0`, `http://127.0.0.1:8080/stream/${IH}/0`, base))
  assert.ok(!sameURL(`/stream/${IH}/1`, `/stream/${IH}/0`, base))
  // The quick start's stream is the file's stream, paced.
  assert.ok(sameURL(`http://127.0.0.1:8080/stream/${IH}/0?quick=1`, `/stream/${IH}/0`, base))
  assert.ok(!sameURL(`http://127.0.0.1:8080/stream/${IH}/1?quick=1`, `/stream/${IH}/0`, base))
  assert.ok(!sameURL(`http://other:8080/stream/${IH}/0`, `/stream/${IH}/0`, base))
  for (const a of ['', null, undefined]) assert.ok(!sameURL(a, `/stream/${IH}/0`, base))
  assert.ok(!sameURL('http://[', `/stream/${IH}/0`, base))
})

test('nextLead: twice as far after a miss, and at least twice as long as readiness took, within the maximum', () => {
  assert.equal(nextLead(1, 0.5), 2)
  assert.equal(nextLead(1, 3.7), 7.4) // a busy machine: the next try must not miss for the same reason
  assert.equal(nextLead(8, 16), HANDOVER_MAX_LEAD_S)
  assert.equal(nextLead(HANDOVER_MAX_LEAD_S, 0), HANDOVER_MAX_LEAD_S)
})

test('leadAfter: further ahead after a miss or a timeout; the same after a move, or when a still video began to play', () => {
  assert.equal(leadAfter('missed', 1, 3.7, false), 7.4)
  assert.equal(leadAfter('timeout', 2, 20, false), HANDOVER_MAX_LEAD_S)
  assert.equal(leadAfter('timeout', 2, 20, true), HANDOVER_MAX_LEAD_S)
  assert.equal(leadAfter('moved', 4, 3, false), 4)
  // Waiting where a paused video stood (autoplay not begun), which then played on: not late.
  assert.equal(leadAfter('missed', 1, 1.3, true), 1)
})

test('handoverTarget: ahead of a playing video, within its duration; where a still one stands', () => {
  const v = { currentTime: 3, paused: false, ended: false, duration: 20 }
  assert.equal(handoverTarget(v, HANDOVER_LEAD_S), 3 + HANDOVER_LEAD_S)
  assert.equal(handoverTarget({ ...v, paused: true }, 4), 3)
  assert.equal(handoverTarget({ ...v, currentTime: 20, ended: true }, 4), 20)
  // Near the end the moment stays before it (a video that has ended is not played on).
  assert.equal(handoverTarget({ ...v, currentTime: 19 }, 4), 19.75)
  assert.equal(handoverTarget({ ...v, currentTime: 19.9 }, 4), 19.9)
  // Duration unknown (NaN) or infinite: just ahead.
  assert.equal(handoverTarget({ ...v, duration: NaN }, 2), 5)
  assert.equal(handoverTarget({ ...v, duration: Infinity }, 2), 5)
})

test('handoverMoment: switch at the moment, wait before it, try further ahead past it, follow seeks', () => {
  const at = (now, o = {}) => handoverMoment({ now, last: now - 0.015, target: 5, paused: false, seeking: false, ended: false, ...o })
  assert.equal(at(4), 'wait')
  assert.equal(at(4.96), 'wait')
  assert.equal(at(4.98), 'switch') // within a frame before
  assert.equal(at(5), 'switch')
  assert.equal(at(5.2), 'switch') // a late poll
  assert.equal(at(5.4), 'missed')
  // The viewer sought: backwards, a jump forwards, or seeking now.
  assert.equal(at(2, { last: 4 }), 'moved')
  assert.equal(at(12, { last: 4.5 }), 'moved')
  assert.equal(at(4.9, { last: 2.4, elapsed: 0.5 }), 'moved') // 2.5 s of film in half a second
  // A poll 3 s late (a busy main thread) sees playback, not a seek: wait, or missed past it.
  assert.equal(at(4.5, { last: 1.5, elapsed: 3 }), 'wait')
  assert.equal(at(7, { last: 4, elapsed: 3 }), 'missed')
  assert.equal(at(4.5, { last: 1.5, elapsed: 1.5, rate: 2 }), 'wait')
  assert.equal(at(4.5, { seeking: true }), 'moved')
  // Paused or ended: switch only where the waiting video stands.
  assert.equal(at(5, { paused: true, last: 5 }), 'switch')
  assert.equal(at(4.2, { paused: true, last: 4.2 }), 'moved')
  assert.equal(at(20, { ended: true, last: 20, target: 20 }), 'switch')
})

test('isStalled: no byte from anyone for longer than STALL_MS', () => {
  const none = { fromGateway: 0, fromBrowsers: 0, fromWebseed: 0 }
  assert.ok(!isStalled(none, STALL_MS))
  assert.ok(isStalled(none, STALL_MS + 1))
  assert.ok(!isStalled({ ...none, fromWebseed: 1 }, 10 * STALL_MS))
})

test('wireKind tells the gateway, webseeds and browsers apart', () => {
  const gw = 'abcd'
  assert.equal(wireKind({ type: 'webSeed', peerId: gw }, gw), 'webseed')
  assert.equal(wireKind({ type: 'webrtc', peerId: 'ABCD' }, gw), 'gateway')
  assert.equal(wireKind({ type: 'webrtc', peerId: 'ef01' }, gw), 'browsers')
  assert.equal(wireKind({ type: 'tcpOutgoing', peerId: 'ef01' }, gw), 'other')
  // Another gateway (restarted, or another node of a cluster): another id, the same prefix.
  assert.equal(wireKind({ type: 'webrtc', peerId: '2d5347303030312dffff' }, gw, '2d5347303030312d'), 'gateway')
  assert.equal(wireKind({ type: 'webrtc', peerId: '2d5757303330302dffff' }, gw, '2d5347303030312d'), 'browsers')
  assert.equal(wireKind({ type: 'webrtc', peerId: 'ef01' }, gw, ''), 'browsers')
})

test('swarmStats counts bytes by source and the share from browsers', () => {
  const s = swarmStats({
    peers: { gateway: 1, browsers: 2, webseed: 1, other: 0 },
    from: { gateway: 300, browsers: 600, webseed: 100, other: 0 },
    uploaded: 50,
    downloadSpeed: 12.6,
    uploadSpeed: undefined
  })
  assert.deepEqual(s, {
    gatewayPeers: 1,
    browserPeers: 2,
    webseedPeers: 1,
    downloadSpeed: 13,
    uploadSpeed: 0,
    fromGateway: 300,
    fromBrowsers: 600,
    fromWebseed: 100,
    uploaded: 50,
    p2pShare: 0.6
  })
  const none = { gateway: 0, browsers: 0, webseed: 0, other: 0 }
  assert.equal(swarmStats({ peers: none, from: none, uploaded: 0 }).p2pShare, 0)
})

test('webseedURLs appends the name to a single-file torrent\'s folder URLs (BEP 19)', () => {
  const list = ['http://gw/webseed/', 'http://gw/full/a.mp4']
  assert.deepEqual(webseedURLs(list, 'a b.mp4', 1), ['http://gw/webseed/a%20b.mp4', 'http://gw/full/a.mp4'])
  assert.equal(webseedURLs(list, 'a', 2), list)
  assert.equal(webseedURLs(undefined, 'a', 1), undefined)
})

test('subtitlesFor: subtitle files named like the video first, at most 20', () => {
  const video = file(0, 'Show/Movie.mkv', 'video/x-matroska', 1)
  const files = [video, file(1, 'Show/other.srt', '', 1), file(2, 'Show/movie.en.SRT', '', 1), file(3, 'Show/notes.txt', '', 1), file(4, 'Show/Movie.fr.vtt', '', 1)]
  assert.deepEqual(subtitlesFor(files, video).map(f => f.index), [2, 4, 1])
  const many = Array.from({ length: 30 }, (_, i) => file(i + 1, `s${i}.vtt`, '', 1))
  assert.equal(subtitlesFor(many, video).length, 20)
})

test('subtitleTrack: label without the extension, language from the name', () => {
  assert.deepEqual(subtitleTrack('Show/Movie.en.srt'), { label: 'Movie.en', srclang: 'en' })
  assert.deepEqual(subtitleTrack('Movie_pt-BR.vtt'), { label: 'Movie_pt-BR', srclang: 'pt-BR' })
  assert.deepEqual(subtitleTrack('Movie.srt'), { label: 'Movie', srclang: '' })
})

test('srtToVtt: header, commas to dots in timings, BOM and CRLF gone', () => {
  const srt = '\uFEFF1\r\n00:00:01,500 --> 00:00:02,000\r\nHello, world\r\n\r\n'
  assert.equal(srtToVtt(srt), 'WEBVTT\n\n1\n00:00:01.500 --> 00:00:02.000\nHello, world\n')
})

test('waitingForMetadata says how the peer search goes, and what to try once nobody is found', () => {
  const base = { seconds: 5, known_peers: 0, connecting: 0, connected: 0, trackers: 1, dht: true, dht_nodes: 12, browsers: 0 }
  let w = waitingForMetadata(base)
  assert.equal(w.text, "Waiting for the torrent's metadata (5 s): 0 peers connected · 0 known · 1 tracker · DHT: 12 nodes")
  assert.equal(w.hint, '', 'nothing to suggest this early')
  w = waitingForMetadata({ ...base, seconds: 30 })
  assert.match(w.hint, /no seeders right now/)
  w = waitingForMetadata({ ...base, seconds: 30, trackers: 0, dht: false })
  assert.match(w.text, /0 trackers · DHT off/)
  assert.match(w.hint, /cannot look for peers/)
  w = waitingForMetadata({ ...base, seconds: 30, known_peers: 4, connecting: 2 })
  assert.match(w.text, /4 known · 2 connecting/)
  assert.match(w.hint, /none answers yet/)
  assert.equal(waitingForMetadata({ ...base, seconds: 30, connected: 1 }).hint, '', 'a peer is connected: the metadata is coming')
  assert.equal(waitingForMetadata(undefined).hint, '')
})

test('aloneTooLong: the webseed comes back after ALONE_MS without a wire, not before, not once done', () => {
  let r = aloneTooLong(0, 1000, 0, false)
  assert.deepEqual(r, { aloneSince: 1000, restore: false })
  r = aloneTooLong(r.aloneSince, 1000 + ALONE_MS - 1, 0, false)
  assert.equal(r.restore, false)
  r = aloneTooLong(r.aloneSince, 1000 + ALONE_MS, 0, false)
  assert.deepEqual(r, { aloneSince: 0, restore: true })
  // A wire meanwhile starts the count over; a done torrent needs nothing.
  assert.deepEqual(aloneTooLong(1000, 1000 + ALONE_MS, 1, false), { aloneSince: 0, restore: false })
  assert.deepEqual(aloneTooLong(1000, 1000 + ALONE_MS, 0, true), { aloneSince: 0, restore: false })
})
