// What the home page's box holds, as the body of POST /api/torrents: a magnet, an infohash, or
// the http(s) URL of a .torrent file (which the gateway fetches). Pure, for node's test runner.

// addRequestFor returns { body } for the API, or { error } saying what the box needs.
export function addRequestFor (text) {
  const s = text.trim()
  if (!s) return { error: 'Paste a magnet link, an infohash or the address of a .torrent file first.' }
  if (/^magnet:/i.test(s)) return { body: { magnet: s } }
  if (/^https?:\/\//i.test(s)) return { body: { url: s } }
  if (/^[0-9a-f]{40}$/i.test(s)) return { body: { infohash: s.toLowerCase() } }
  if (/^[0-9a-f]+$/i.test(s)) return { error: `An infohash has 40 hex digits; this has ${s.length}.` }
  return { error: 'That is not a magnet link (magnet:?xt=urn:btih:…), a 40-hex infohash or an http(s) address of a .torrent file.' }
}

// liveLine words a live stream of GET /api/live for the home page's list.
export function liveLine (st, formatRate) {
  const parts = [st.state]
  if (st.state !== 'ended') {
    parts.push(`${formatRate((st.bitrate_bps || 0) / 8)}`)
    parts.push(`${st.browser_peers} watching in browsers`)
  }
  if (st.window?.seconds) parts.push(`${Math.round(st.window.seconds)} s to rewind`)
  return parts.join(' · ')
}
