// The watch page's stats panel, worded: this browser's side (from webtorrent's counters, or the
// plain stream) and the gateway's (from its API). Pure, for node's test runner.
import { formatBytes, formatRate } from './format.js'

const percent = x => `${(x * 100).toFixed(0)} %`

// browserSide words what this browser got and gave. In the /stream fallback webtorrent's counters
// see nothing: every byte comes from the gateway over HTTP, and the panel says so rather than
// "0 B from the gateway". The webseed is the gateway too (over HTTP): "from the gateway" counts
// both, with the webseed's part named.
export function browserSide (s, mode) {
  if (mode === 'hls') {
    const all = s.fromGateway + s.fromBrowsers
    return {
      mode: 'HLS from the gateway (P2P segments)',
      fromGateway: formatBytes(s.fromGateway),
      fromBrowsers: all > 0 ? `${formatBytes(s.fromBrowsers)} (${percent(s.fromBrowsers / all)} of it)` : formatBytes(s.fromBrowsers),
      uploaded: formatBytes(s.uploaded),
      peers: `browsers ${s.browserPeers}` + (s.rejected ? ` · ${s.rejected} forged segment(s) refused` : '')
    }
  }
  if (mode === 'hls-native') {
    return {
      mode: "HLS from the gateway (the browser's own player)",
      fromGateway: 'everything, over HTTP',
      fromBrowsers: '– (without Media Source Extensions, no P2P)',
      uploaded: '–',
      peers: '–'
    }
  }
  if (mode !== 'webtorrent') {
    return {
      mode: 'gateway stream (HTTP)',
      fromGateway: 'everything, over HTTP',
      fromBrowsers: '– (the stream plays without P2P)',
      uploaded: '–',
      peers: '–'
    }
  }
  const gateway = s.fromGateway + s.fromWebseed
  const all = gateway + s.fromBrowsers
  return {
    mode: 'webtorrent (P2P)',
    fromGateway: s.fromWebseed > 0 ? `${formatBytes(gateway)} (${formatBytes(s.fromWebseed)} over its webseed)` : formatBytes(gateway),
    fromBrowsers: all > 0 ? `${formatBytes(s.fromBrowsers)} (${percent(s.fromBrowsers / all)} of it)` : formatBytes(s.fromBrowsers),
    uploaded: formatBytes(s.uploaded),
    peers: `gateway ${s.gatewayPeers} · browsers ${s.browserPeers} · webseed ${s.webseedPeers}`
  }
}

// gatewaySide words the gateway's own side of the torrent (GET /api/torrents/{ih}): what
// TorrServer users look at first.
export function gatewaySide (t) {
  if (!t) return { peers: '–', download: '–', held: '–' }
  return {
    peers: `${t.peers.native} native · ${t.peers.webrtc} ${t.peers.webrtc === 1 ? 'browser' : 'browsers'}`,
    download: formatRate(t.rates.download),
    held: t.state === 'metadata' ? 'waiting for metadata' : percent(t.progress)
  }
}

// bufferedAhead is how many seconds of the video are buffered past t, from the ranges of a
// media element's buffered (as [start, end] pairs).
export function bufferedAhead (ranges, t) {
  for (const [start, end] of ranges) {
    if (start <= t + 0.25 && t < end) return end - t
  }
  return 0
}
