// needs.js tells the gateway where this page's player reads, so that a gateway that chooses what
// each browser hears it has (upload sharing, third_party/README.md) offers the pieces this player
// waits on rather than guessing from the file's start. A page that began on the gateway's HTTP
// stream and hands over to webtorrent half a minute in waits on pieces there, not at piece 0,
// and under a busy uplink the gateway offered those late or never: the hand-over's second video
// waited 5–58 s (BenchmarkOffload).

// NEEDS_EXTENSION is the BEP 10 extension the gateway advertises for it; the message is a
// bencoded dictionary {piece: index}.
export const NEEDS_EXTENSION = 'sg_needs'

// tellNeeds watches torrent (a webtorrent Torrent, before its wires come) for the piece its
// streams wait on — webtorrent marks the piece a stream waits on critical (torrent.critical,
// called by every file stream that lacks the piece it reads next) — and tells every wire whose
// peer speaks NEEDS_EXTENSION, when it changes and when such a wire comes. Other peers (browsers)
// hear nothing.
export function tellNeeds (torrent) {
  let needs = -1
  const told = new WeakMap() // wire → the piece last told
  const tell = wire => {
    if (needs < 0 || told.get(wire) === needs || !wire.peerExtendedMapping?.[NEEDS_EXTENSION]) return
    told.set(wire, needs)
    try {
      wire.extended(NEEDS_EXTENSION, { piece: needs })
    } catch {
      // A wire closing meanwhile: it has no player to serve.
    }
  }
  const critical = torrent.critical.bind(torrent)
  torrent.critical = (start, end) => {
    if (Number.isInteger(start) && start >= 0 && start !== needs) {
      needs = start
      for (const w of torrent.wires) tell(w)
    }
    return critical(start, end)
  }
  torrent.on('wire', wire => {
    wire.on('extended', ext => {
      if (ext === 'handshake') tell(wire)
    })
  })
}
