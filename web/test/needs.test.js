// Tests of static/needs.js, run by `make test`, on real bittorrent-protocol wires (web/node_modules,
// the code webtorrent.min.js carries) piped to each other: the page's end is hooked by tellNeeds,
// the other end plays the gateway (it speaks sg_needs, as the gateway's extended handshake says)
// or another browser (it does not).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import Wire from 'bittorrent-protocol'
import bencode from 'bencode'
import { NEEDS_EXTENSION, tellNeeds } from '../static/needs.js'

const IH = '0123456789abcdef0123456789abcdef01234567'

// fakeTorrent stands in for a webtorrent Torrent: its wires, its 'wire' event, and critical.
function fakeTorrent () {
  const t = new EventEmitter()
  t.wires = []
  t.criticalCalls = []
  t.critical = function (start, end) { this.criticalCalls.push([start, end]) }
  return t
}

// connect pipes a page wire (added to torrent, as webtorrent does on a handshake) to a peer wire
// that speaks sg_needs when gateway is true; it returns the pieces the peer was told.
function connect (torrent, gateway) {
  const page = new Wire()
  const peer = new Wire()
  page.pipe(peer).pipe(page)
  const told = []
  const heard = [] // every extended message but the handshake, by id or name
  peer.on('extended', ext => { if (ext !== 'handshake') heard.push(ext) })
  if (gateway) {
    class Needs {
      onMessage (buf) { told.push(bencode.decode(buf)) }
    }
    Needs.prototype.name = NEEDS_EXTENSION
    peer.use(Needs)
  }
  page.once('handshake', () => {
    torrent.wires.push(page)
    torrent.emit('wire', page)
  })
  peer.once('handshake', () => peer.handshake(IH, '2'.repeat(40)))
  // Up once the page has the peer's extended handshake (what tellNeeds looks at).
  const up = new Promise(resolve => page.on('extended', ext => { if (ext === 'handshake') resolve() }))
  page.handshake(IH, '1'.repeat(40))
  return { told, heard, page, peer, up }
}

// until waits for cond, polling, for at most 2 s.
async function until (cond, what) {
  for (const deadline = Date.now() + 2000; !cond();) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

test('tellNeeds tells the gateway the piece a stream waits on, once per change, and a late gateway what is current', async () => {
  const torrent = fakeTorrent()
  tellNeeds(torrent)
  const gw = connect(torrent, true)
  const browser = connect(torrent, false)
  await Promise.all([gw.up, browser.up])
  assert.deepEqual(gw.told, [], 'nothing told before a stream waits')

  torrent.critical(40, 42)
  torrent.critical(40, 42) // the same piece again: not told again
  torrent.critical(41, 43)
  await until(() => gw.told.length >= 2, 'two messages at the gateway')
  assert.deepEqual(gw.told, [{ piece: 40 }, { piece: 41 }])
  assert.deepEqual(torrent.criticalCalls, [[40, 42], [40, 42], [41, 43]], 'webtorrent\'s own critical still runs')

  const late = connect(torrent, true)
  await until(() => late.told.length >= 1, 'the late gateway wire to hear')
  assert.deepEqual(late.told, [{ piece: 41 }], 'a gateway wire that comes later hears where the player is')

  torrent.critical(3, 5) // a seek back
  await until(() => gw.told.length >= 3 && late.told.length >= 2, 'the seek at both gateway wires')
  assert.deepEqual(gw.told.at(-1), { piece: 3 })
  assert.deepEqual(late.told.at(-1), { piece: 3 })
  // The browser's wire was written to in the same turns as the gateways' (tellNeeds tells the
  // wires in order), so whatever it was sent has arrived by now.
  assert.deepEqual(browser.heard, [], 'another browser hears nothing')
  assert.equal(gw.heard.length, 3)
  for (const w of [gw, browser, late]) {
    w.page.destroy()
    w.peer.destroy()
  }
})

test('tellNeeds: a wire closed meanwhile does not break webtorrent\'s critical', async () => {
  const torrent = fakeTorrent()
  tellNeeds(torrent)
  const gw = connect(torrent, true)
  await gw.up
  gw.page.destroy()
  torrent.critical(7, 9)
  assert.deepEqual(torrent.criticalCalls, [[7, 9]])
  gw.peer.destroy()
})
