// Tests of static/rejoin.js, run by `make test`: its timing decisions as pure functions, its hook
// on a stand-in tracker, and the hook on the real bittorrent-tracker client (web/node_modules,
// the same code webtorrent.min.js and live.min.js carry) against a real websocket server on
// loopback: a socket the server drops, a server that goes away and comes back on the same port,
// and two trackers sharing one socket.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { register } from 'node:module'
import {
  REJOIN_CAP_MS, REJOIN_FIRST_MS, REJOIN_STABLE_MS, isWebSocketTracker, nextAttempt, p2pmlTrackers,
  rejoinDelay, rejoinSoon, torrentTrackers
} from '../static/rejoin.js'

test('rejoinDelay: 1–3 s after a first drop, the window growing by half per failure in a row, capped at 15–30 s', () => {
  const window = attempt => [rejoinDelay(attempt, () => 0), rejoinDelay(attempt, () => 0.9999999)]
  assert.deepEqual(window(0), [1000, 3000])
  assert.deepEqual(window(1), [1500, 4500])
  assert.deepEqual(window(2), [2250, 6750])
  assert.deepEqual(window(3), [3375, 10125])
  assert.deepEqual(window(6), [11391, 30000]) // the upper end capped first
  assert.deepEqual(window(7), [15000, 30000])
  assert.deepEqual(window(1000), [REJOIN_CAP_MS[0], REJOIN_CAP_MS[1]])
  assert.equal(rejoinDelay(0, () => 0.5), 2000)
  // Nonsense attempts count as a first drop.
  assert.deepEqual(window(-3), REJOIN_FIRST_MS)
  assert.deepEqual(window(NaN), REJOIN_FIRST_MS)
  for (let a = 1; a < 20; a++) {
    assert.ok(rejoinDelay(a, () => 0) >= rejoinDelay(a - 1, () => 0), `the window never shrinks (attempt ${a})`)
  }
})

test('rejoinDelay: a page that keeps failing while a gateway is away for its 10 s drain tries again soon after it is back', () => {
  // Whatever the draws, the attempt that comes after the gateway is back was scheduled before,
  // so the page waits at most that attempt's window.
  for (const draw of [0, 0.5, 0.9999999]) {
    let t = 0
    let attempt = 0
    while (t + rejoinDelay(attempt, () => draw) < 10_000) t += rejoinDelay(attempt++, () => draw)
    const back = t + rejoinDelay(attempt, () => draw) - 10_000
    assert.ok(back <= 15_200, `draw ${draw}: back ${back} ms after the gateway`)
  }
  // The worst case: every failure at the low end, then the high end once the gateway is back.
  let t = 0
  let attempt = 0
  while (t + rejoinDelay(attempt, () => 0) < 10_000) t += rejoinDelay(attempt++, () => 0)
  assert.ok(rejoinDelay(attempt, () => 0.9999999) - (10_000 - t) <= 15_200)
})

test('rejoinDelay spreads an audience dropped at once over the whole window', () => {
  const delays = Array.from({ length: 2000 }, () => rejoinDelay(0))
  const min = Math.min(...delays)
  const max = Math.max(...delays)
  assert.ok(min >= 1000 && max <= 3000, `${min}..${max}`)
  assert.ok(max - min > 1800, `2000 viewers come back within ${max - min} ms of each other`)
  // No second holds more than about a third of them (uniform: half each).
  const firstSecond = delays.filter(d => d < 2000).length
  assert.ok(firstSecond > 800 && firstSecond < 1200, `${firstSecond} of 2000 in the first second`)
})

test('nextAttempt counts drops in a row and starts over after a quiet minute', () => {
  let s = nextAttempt(null, 1000)
  assert.deepEqual(s, { attempt: 0, at: 1000 })
  s = nextAttempt(s, 3000) // the reopened socket failed
  assert.equal(s.attempt, 1)
  s = nextAttempt(s, 9000)
  assert.equal(s.attempt, 2)
  s = nextAttempt(s, 9000 + REJOIN_STABLE_MS) // up for a minute: a new incident
  assert.equal(s.attempt, 0)
})

test('an unreachable tracker is tried a bounded number of times, never in a tight loop', () => {
  // Each failed attempt drops again right after its delay (connection refused at once).
  let last = null
  let t = 0
  let tries = 0
  while (t < 10 * 60_000) {
    last = nextAttempt(last, t)
    t += rejoinDelay(last.attempt, () => 0)
    tries++
  }
  // 1, 1.5, 2.3, 3.4, 5.1, 7.6, 11.4 s, then every 15 s at the fastest: under 50 tries in 10 minutes.
  assert.ok(tries <= 50, `${tries} tries in 10 minutes`)
  assert.ok(last.attempt >= 7, 'the backoff held at its cap')
})

// A stand-in for bittorrent-tracker's WebSocketTracker: what rejoinSoon touches.
function fakeTracker (over = {}) {
  return {
    announceUrl: 'ws://127.0.0.1:1/announce',
    client: { destroyed: false },
    reconnecting: false,
    reconnectTimer: null,
    retries: 0,
    opened: 0,
    socket: null,
    _startReconnectTimer () { throw new Error('the library\'s timer ran') },
    _openSocket () { this.opened++ },
    ...over
  }
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

test('rejoinSoon reopens the socket after its own delay, and only websocket trackers', async () => {
  const t = fakeTracker()
  const scheduled = []
  assert.equal(rejoinSoon(t, { delay: a => 20 + a, onSchedule: (ms, a) => scheduled.push([ms, a]) }), true)
  assert.equal(rejoinSoon(t), true, 'hooking twice is a no-op')
  t._startReconnectTimer() // the library on a drop
  assert.equal(t.reconnecting, true)
  assert.equal(t.opened, 0)
  await sleep(60)
  assert.equal(t.opened, 1)
  assert.equal(t.retries, 1)
  t._startReconnectTimer() // the reopened socket failed too
  await sleep(60)
  assert.deepEqual(scheduled, [[20, 0], [21, 1]])
  assert.equal(t.opened, 2)

  assert.equal(isWebSocketTracker(fakeTracker({ announceUrl: 'https://tracker.example/announce' })), false)
  assert.equal(rejoinSoon({ announceUrl: 'ws://x' }), false)
  assert.equal(rejoinSoon(null), false)
})

test('rejoinSoon takes over a reconnect the library scheduled before the hook', async () => {
  const libraryTimer = setTimeout(() => assert.fail('the library\'s 10 s+ timer was left running'), 5000)
  const t = fakeTracker({ reconnecting: true, reconnectTimer: libraryTimer })
  rejoinSoon(t, { delay: () => 10, onSchedule: null })
  await sleep(40)
  assert.equal(t.opened, 1)
})

test('rejoinSoon does not reopen the socket of a client destroyed while it waited', async () => {
  const t = fakeTracker()
  rejoinSoon(t, { delay: () => 10, onSchedule: null })
  t._startReconnectTimer()
  t.client.destroyed = true
  await sleep(40)
  assert.equal(t.opened, 0)
})

test('torrentTrackers and p2pmlTrackers find the trackers where the pinned libraries keep them', () => {
  const ws = fakeTracker()
  const http = { announceUrl: 'http://x/announce', _startReconnectTimer () {}, _openSocket () {} }
  assert.deepEqual(torrentTrackers({ discovery: { tracker: { _trackers: [http, ws] } } }), [ws])
  assert.deepEqual(torrentTrackers({}), [])
  const loaders = new Map([['a', { loader: { trackerClient: { client: { _trackers: [ws] } } } }], ['b', {}]])
  const hls = { p2pEngine: { core: { mainStreamLoader: { p2pLoaders: { loaders } } } } }
  assert.deepEqual([...p2pmlTrackers(hls)], [ws])
  assert.deepEqual([...p2pmlTrackers({})], [])
})

// --- the real bittorrent-tracker client against a websocket server on loopback ---

// bittorrent-tracker's node entry loads node-datachannel (a native addon `npm ci --ignore-scripts`
// does not build) through webrtc-polyfill; these tests make no WebRTC peer (numwant 0), so a
// stand-in module takes its place.
const stub = 'export class RTCPeerConnection {}\nexport class RTCSessionDescription {}\nexport class RTCIceCandidate {}\n'
const resolveHook = `export async function resolve (specifier, context, next) {
  if (specifier === 'webrtc-polyfill') return { url: 'data:text/javascript,' + encodeURIComponent(${JSON.stringify(stub)}), shortCircuit: true }
  return next(specifier, context)
}`
let Client, WebSocketServer, missing
try {
  register('data:text/javascript,' + encodeURIComponent(resolveHook))
  ;({ default: Client } = await import('bittorrent-tracker'))
  ;({ WebSocketServer } = await import('ws'))
} catch (err) {
  missing = `web/node_modules not installed (make web): ${err.message}`
}

// startTracker is a minimal websocket tracker: it answers every announce (interval 120 s) and
// records it. delayUpgrade, while set, holds new connections that long before they open.
async function startTracker (port = 0) {
  const tr = { announces: [], sockets: new Set(), delayUpgrade: 0 }
  tr.wss = new WebSocketServer({
    host: '127.0.0.1',
    port,
    verifyClient: (_info, done) => tr.delayUpgrade ? setTimeout(() => done(true), tr.delayUpgrade) : done(true)
  })
  await new Promise((resolve, reject) => { tr.wss.once('listening', resolve); tr.wss.once('error', reject) })
  tr.port = tr.wss.address().port
  tr.url = `ws://127.0.0.1:${tr.port}/announce`
  tr.wss.on('connection', ws => {
    tr.sockets.add(ws)
    ws.on('close', () => tr.sockets.delete(ws))
    ws.on('message', data => {
      const m = JSON.parse(data)
      if (m.action !== 'announce') return
      tr.announces.push({ at: Date.now(), infoHash: Buffer.from(m.info_hash, 'latin1').toString('hex'), event: m.event, socket: ws })
      ws.send(JSON.stringify({ action: 'announce', info_hash: m.info_hash, interval: 120, complete: 0, incomplete: 1 }))
    })
  })
  // cut drops every socket as a dying node does (no close frame).
  tr.cut = () => { for (const ws of tr.sockets) ws.terminate() }
  tr.close = () => {
    tr.cut()
    return new Promise(resolve => tr.wss.close(() => resolve()))
  }
  return tr
}

function startClient (url, infoHash) {
  const c = new Client({
    infoHash,
    peerId: '2d5357303030302d' + infoHash.slice(0, 24),
    announce: [url],
    port: 6881,
    getAnnounceOpts: () => ({ numwant: 0 }) // no offers: no WebRTC peer to make
  })
  c.on('warning', () => {})
  c.on('error', () => {})
  c.start()
  return c
}

const IH1 = '1'.repeat(40)
const IH2 = '2'.repeat(40)

async function until (what, ms, cond) {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`)
    await sleep(10)
  }
}

const announcesOf = (tr, ih) => tr.announces.filter(a => a.infoHash === ih)

test('real client: after the server drops its socket, it announces again within the delay (the library alone waits ≥ 10 s)', { skip: missing }, async t => {
  const tr = await startTracker()
  t.after(() => tr.close())
  const hooked = startClient(tr.url, IH1)
  const plain = startClient(tr.url.replace('/announce', '/plain'), IH2)
  t.after(() => { hooked.destroy(); plain.destroy() })
  await until('both announce', 3000, () => announcesOf(tr, IH1).length === 1 && announcesOf(tr, IH2).length === 1)
  assert.equal(rejoinSoon(hooked._trackers[0], { delay: () => 200, onSchedule: null }), true)
  const cutAt = Date.now()
  tr.cut()
  await until('the hooked client re-announces', 3000, () => announcesOf(tr, IH1).length === 2)
  const again = announcesOf(tr, IH1)[1]
  assert.ok(again.at - cutAt >= 200, `re-announced ${again.at - cutAt} ms after the cut, before its delay`)
  assert.ok(tr.sockets.has(again.socket), 'on a new, open socket')
  assert.equal(hooked._trackers[0].reconnecting, false)
  // The library's own backoff: nothing for seconds.
  await sleep(1500)
  assert.equal(announcesOf(tr, IH2).length, 1, 'the unhooked client re-announced within 1.5 s')
  assert.equal(plain._trackers[0].reconnecting, true)
})

test('real client: a tracker down for a while (restart on the same port) is retried with backoff and rejoined', { skip: missing }, async t => {
  let tr = await startTracker()
  const port = tr.port
  const c = startClient(tr.url, IH1)
  t.after(() => c.destroy())
  await until('the first announce', 3000, () => announcesOf(tr, IH1).length === 1)
  const schedule = []
  // rejoinDelay scaled down 20×: 50–150 ms first, 75–225 ms, 113–338 ms…
  rejoinSoon(c._trackers[0], { delay: a => rejoinDelay(a) / 20, onSchedule: (ms, a) => schedule.push(a) })
  await tr.close()
  await sleep(700) // connection refused meanwhile, attempt after attempt
  tr = await startTracker(port)
  t.after(() => tr.close())
  await until('the client re-announces on the restarted server', 5000, () => announcesOf(tr, IH1).length === 1)
  assert.ok(schedule.length >= 2, `attempts ${schedule}`)
  assert.deepEqual(schedule, schedule.map((_, i) => i), 'each failure in a row waits longer')
})

test('real client: two trackers sharing a socket that is still connecting both announce once it opens', { skip: missing }, async t => {
  const tr = await startTracker()
  t.after(() => tr.close())
  const a = startClient(tr.url, IH1)
  const b = startClient(tr.url, IH2)
  t.after(() => { a.destroy(); b.destroy() })
  await until('both announce', 3000, () => announcesOf(tr, IH1).length === 1 && announcesOf(tr, IH2).length === 1)
  assert.equal(tr.sockets.size, 1, 'the library pools one socket per URL')
  rejoinSoon(a._trackers[0], { delay: () => 50, onSchedule: null })
  rejoinSoon(b._trackers[0], { delay: () => 150, onSchedule: null })
  // a reopens at 50 ms; its socket opens only at ~450 ms, so b (150 ms) joins it while it connects.
  tr.delayUpgrade = 400
  tr.cut()
  await until('both re-announce', 3000, () => announcesOf(tr, IH1).length === 2 && announcesOf(tr, IH2).length === 2)
  assert.equal(b._trackers[0].reconnecting, false)
})
