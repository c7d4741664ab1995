// The player's decisions, as pure functions of what they decide on: no DOM, no network, no timers,
// so that web/test runs them under node. player.js does the I/O around them.

// With webtorrent running but not a byte from anyone this long, play from /stream instead.
export const STALL_MS = 20_000

// The MediaError codes the player tells apart (HTMLMediaElement's, which node does not have).
export const MEDIA_ERR_NETWORK = 2
export const MEDIA_ERR_DECODE = 3
export const MEDIA_ERR_SRC_NOT_SUPPORTED = 4

// Failure is a reason not to play that the viewer can act on, with the link that helps (the
// stream, for another player), if any.
export class Failure extends Error {
  constructor (message, link) {
    super(message)
    this.link = link
  }
}

export function isPlayable (f) {
  return /^(video|audio)\//.test(f.mime)
}

export function isSubtitle (f) {
  return /\.(srt|vtt)$/i.test(f.path)
}

// srtToVtt turns SubRip text into WebVTT: a header, and dots instead of commas in cue timings.
export function srtToVtt (srt) {
  const body = srt
    .replace(/^\uFEFF/, '')
    .replace(/\r\n?/g, '\n')
    .replace(/(\d\d:\d\d:\d\d),(\d\d\d)/g, '$1.$2')
    .trim()
  return 'WEBVTT\n\n' + body + '\n'
}

// infohashFromPath is the infohash a page's path names (/watch/<ih> or /embed/<ih>), lowercased,
// or '' for any other path. Whether it is 40 hex digits is checked where the torrent is loaded.
export function infohashFromPath (pathname) {
  const m = pathname.match(/^\/(?:watch|embed)\/([^/]+)\/?$/)
  if (!m) return ''
  try {
    return decodeURIComponent(m[1]).toLowerCase()
  } catch {
    return '' // a malformed %-escape names no torrent
  }
}

// isInfohash says whether s is a 40-hex infohash as the gateway writes it.
export function isInfohash (s) {
  return /^[0-9a-f]{40}$/.test(s)
}

// parseBoot reads the start-up data the gateway rendered into the page (config, torrent, metainfo
// in base64): an object, or null when there is none or it is not a JSON object (the player then
// fetches each).
export function parseBoot (text) {
  if (typeof text !== 'string') return null
  try {
    const boot = JSON.parse(text)
    return boot !== null && typeof boot === 'object' && !Array.isArray(boot) ? boot : null
  } catch {
    return null
  }
}

// playbackPath picks how the page plays from what the browser can do: webtorrent streams into
// <video> through its service worker, so without one (an insecure context such as plain http on a
// LAN address, or a browser without service workers) the page plays the gateway's /stream.
// It returns {mode: 'webtorrent'} or {mode: 'stream', why}.
export function playbackPath ({ secureContext, hasServiceWorker, origin }) {
  if (!secureContext) {
    return { mode: 'stream', why: `No service worker: ${origin} is not a secure context (use https, or localhost)` }
  }
  if (!hasServiceWorker) return { mode: 'stream', why: 'No service worker in this browser' }
  return { mode: 'webtorrent' }
}

// pickFile chooses the file to play: the one ?file= names (fileParam, null when absent), else the
// largest file playsHere accepts, else the largest video or audio at all. It throws a Failure
// when there is nothing to play.
export function pickFile (torrent, fileParam, playsHere) {
  if (fileParam !== null && fileParam !== undefined) {
    const f = /^\d+$/.test(fileParam) ? torrent.files.find(f => f.index === Number(fileParam)) : undefined
    if (!f) throw new Failure(`This torrent has no file ${fileParam} (it has ${torrent.files.length}, numbered from 0)`)
    if (!isPlayable(f)) throw new Failure(`${f.path} is not video or audio (${f.mime}). Its stream:`, f.stream_url)
    return f
  }
  const f = torrent.files.filter(isPlayable)
    .sort((a, b) => playsHere(b) - playsHere(a) || b.length - a.length)[0]
  if (!f) throw new Failure('This torrent has no playable file (no video or audio)')
  return f
}

// mimeType is a MIME type without its parameters, as canPlayType is asked.
export function mimeType (mime) {
  return mime.split(';')[0]
}

// videoErrorAction says what a <video> error means: 'stream' to play the gateway's /stream
// instead (in webtorrent mode, the worker's stream may be what failed; /stream tells the two apart
// unless the browser already said it cannot play the type), 'cannot-play' when the browser cannot
// play the file at all, 'fail' for anything else. source is what the video reads: in webtorrent
// mode it starts on /stream (the quick start) until the hand-over; a network error there leaves
// it to webtorrent ('webtorrent': hand over as soon as it can), and a decode error is the
// stream's verdict already.
export function videoErrorAction ({ mode, source = mode, canPlay, code }) {
  if (mode === 'webtorrent' && source === 'stream') {
    if (code === MEDIA_ERR_NETWORK) return 'webtorrent'
    return code === MEDIA_ERR_SRC_NOT_SUPPORTED || code === MEDIA_ERR_DECODE ? 'cannot-play' : 'fail'
  }
  if (mode === 'webtorrent' && canPlay !== '') return 'stream'
  if (code === MEDIA_ERR_SRC_NOT_SUPPORTED || code === MEDIA_ERR_DECODE) return 'cannot-play'
  return 'fail'
}

// isStalled says whether webtorrent has run for elapsedMs without a byte from anyone, long enough
// to give up on it.
export function isStalled (stats, elapsedMs) {
  return stats.fromGateway + stats.fromBrowsers + stats.fromWebseed === 0 && elapsedMs > STALL_MS
}

// ALONE_MS is how long a page whose webseed was closed may go without a single wire, its torrent
// not done, before the webseed comes back: the tracker usually brings a peer sooner, but a page
// must never sit with nobody to fetch from (every peer left, its gateway restarted).
export const ALONE_MS = 15_000

// aloneTooLong tracks how long a page has had no wire: it returns when that began (0: it has
// wires, or is done) and whether the webseed should come back now.
export function aloneTooLong (aloneSince, now, wires, done) {
  if (done || wires > 0) return { aloneSince: 0, restore: false }
  if (!aloneSince) return { aloneSince: now, restore: false }
  if (now - aloneSince < ALONE_MS) return { aloneSince, restore: false }
  return { aloneSince: 0, restore: true }
}

// sameURL says whether two URLs (absolute, or relative to base) name the same resource: the
// video's src as the browser reports it against a stream_url as the gateway wrote it. The quick
// start's mark (?quick=1: the gateway paces that answer) does not make another resource.
export function sameURL (a, b, base) {
  if (!a || !b) return false
  const resource = u => {
    const url = new URL(u, base)
    url.searchParams.delete('quick')
    return url.href
  }
  try {
    return resource(a) === resource(b)
  } catch {
    return false
  }
}

// The hand-over from the quick start (the gateway's /stream, which the page's HTML starts the
// video on) to webtorrent's stream of the same file: a second, hidden video waits on webtorrent's
// stream at a moment just ahead of the playhead (HANDOVER_LEAD_S), and takes the picture when the
// first reaches it. When the first passes the moment before the second is ready, the next try
// waits further ahead (nextLead).
export const HANDOVER_LEAD_S = 1
export const HANDOVER_MAX_LEAD_S = 30

// nextLead is how far ahead the next try waits after a miss: twice as far, and at least twice as
// long as the second video took to be ready this time (readyS, seconds; on a busy machine that
// was 4 to 16 s a try, and doubling from 1 s missed three times running), up to
// HANDOVER_MAX_LEAD_S.
export function nextLead (lead, readyS) {
  return Math.min(Math.max(2 * lead, 2 * readyS), HANDOVER_MAX_LEAD_S)
}

// leadAfter is the lead of the hand-over's next try after one that ended with moment ('missed',
// 'moved', or 'timeout': not ready within the try's time, readyS): further ahead after a miss
// or a timeout, the same after a move. A miss of a moment taken where the first video stood
// still (still: paused, its autoplay not begun) is a move: it started playing, nothing was late.
export function leadAfter (moment, lead, readyS, still) {
  if (moment === 'timeout' || (moment === 'missed' && !still)) return nextLead(lead, readyS)
  return lead
}

// How far from the moment the first video may be when the picture moves: about a frame before
// it (the poll's granularity), and a little after (a late poll) before it counts as missed.
const SWITCH_EARLY_S = 0.03
const SWITCH_LATE_S = 0.25
// A jump of the first video's time this much beyond what the clock allows between two polls is a
// seek, not playback.
const JUMP_S = 1

// handoverTarget is the moment, in seconds of the media, at which the second video waits: lead
// seconds ahead of a playing video (within its duration), where it stands when paused or ended.
export function handoverTarget ({ currentTime, paused, ended, duration }, lead) {
  if (paused || ended) return currentTime
  const end = Number.isFinite(duration) && duration > 0 ? duration : Infinity
  return Math.min(currentTime + lead, Math.max(currentTime, end - SWITCH_LATE_S))
}

// handoverMoment says, at one poll of the first video (now: its currentTime, last: at the previous
// poll, elapsed: seconds of the clock between the two, rate: its playbackRate; paused, seeking,
// ended), what to do with the second one waiting at target: 'switch' (show it and play on),
// 'wait', 'missed' (the moment went by: wait further ahead) or 'moved' (the viewer sought or
// paused elsewhere: wait where the first video is now). A poll that comes late (a main thread
// busy for seconds: five players on two cores) sees the video played on, not sought.
export function handoverMoment ({ now, last, elapsed = 0, rate = 1, target, paused, seeking, ended }) {
  if (seeking || now < last - SWITCH_EARLY_S || now > last + Math.max(elapsed, 0) * (rate || 1) + JUMP_S) return 'moved'
  if (paused || ended) return Math.abs(now - target) <= SWITCH_EARLY_S ? 'switch' : 'moved'
  if (now < target - SWITCH_EARLY_S) return 'wait'
  return now <= target + SWITCH_LATE_S ? 'switch' : 'missed'
}

// wireKind says who is at the other end of a webtorrent wire: the gateway when its peer id is the
// gateway's (gatewayId, lowercase hex) or starts with every gateway's prefix (gatewayPrefix, hex:
// a restarted gateway, another node of a cluster), a webseed when webtorrent made it for a
// url-list entry, another browser over WebRTC, or 'other'.
export function wireKind (wire, gatewayId, gatewayPrefix) {
  if (wire.type === 'webSeed') return 'webseed'
  const id = (wire.peerId || '').toLowerCase()
  if (id === gatewayId || (gatewayPrefix && id.startsWith(gatewayPrefix))) return 'gateway'
  return wire.type === 'webrtc' ? 'browsers' : 'other'
}

// swarmStats is window.swarmgate.stats from the counts by kind of wire: peers and from (bytes
// downloaded) keyed by wireKind, uploaded bytes, and webtorrent's speeds.
export function swarmStats ({ peers, from, uploaded, downloadSpeed, uploadSpeed }) {
  const all = from.gateway + from.browsers + from.webseed + from.other
  return {
    gatewayPeers: peers.gateway,
    browserPeers: peers.browsers,
    webseedPeers: peers.webseed,
    downloadSpeed: Math.round(downloadSpeed || 0),
    uploadSpeed: Math.round(uploadSpeed || 0),
    fromGateway: from.gateway,
    fromBrowsers: from.browsers,
    fromWebseed: from.webseed,
    uploaded,
    p2pShare: all > 0 ? from.browsers / all : 0
  }
}

// webseedURLs completes a single-file torrent's url-list: BEP 19 says an entry ending in "/" gets
// the torrent's name appended, and webtorrent requests it as is.
export function webseedURLs (urlList, name, fileCount) {
  if (fileCount !== 1 || !Array.isArray(urlList)) return urlList
  return urlList.map(u => u.endsWith('/') ? u + encodeURIComponent(name) : u)
}

// subtitlesFor picks the torrent's subtitle files to offer with file: .srt and .vtt, those named
// like it first, at most 20.
export function subtitlesFor (files, file) {
  const stem = file.path.replace(/\.[^./]+$/, '').toLowerCase()
  const likeFile = s => Number(s.path.toLowerCase().startsWith(stem))
  return files.filter(isSubtitle)
    .sort((a, b) => likeFile(b) - likeFile(a))
    .slice(0, 20)
}

// subtitleTrack is the <track> label and language (srclang, '' when the name has none) of a
// subtitle file: "Movie.en.srt" is labelled "Movie.en", in "en".
export function subtitleTrack (path) {
  const name = path.split('/').pop()
  const lang = name.match(/[._-]([a-z]{2,3}(?:-[A-Za-z]{2})?)\.(?:srt|vtt)$/i)
  return { label: name.replace(/\.(srt|vtt)$/i, ''), srclang: lang ? lang[1] : '' }
}

// waitingForMetadata words the gateway's search for a torrent's peers (the API's peer_search)
// while its metadata is awaited: what is going on, and, once a while has passed with nobody
// found, what the user can try. hint is '' while there is nothing to suggest.
export function waitingForMetadata (ps) {
  if (!ps) return { text: "Waiting for the torrent's metadata from its peers…", hint: '' }
  const n = (count, one, many) => `${count} ${count === 1 ? one : many}`
  const parts = [
    `${n(ps.connected, 'peer', 'peers')} connected`,
    `${ps.known_peers} known`
  ]
  if (ps.connecting > 0) parts.push(`${ps.connecting} connecting`)
  parts.push(n(ps.trackers, 'tracker', 'trackers'))
  parts.push(ps.dht ? `DHT: ${n(ps.dht_nodes, 'node', 'nodes')}` : 'DHT off')
  if (ps.browsers > 0) parts.push(n(ps.browsers, 'browser', 'browsers'))
  const text = `Waiting for the torrent's metadata (${ps.seconds} s): ${parts.join(' · ')}`
  let hint = ''
  if (ps.seconds >= 20 && ps.connected === 0) {
    if (ps.known_peers > 0) {
      hint = 'Peers are known but none answers yet: they may be offline or behind firewalls. Keep this page open, or try again later.'
    } else if (ps.trackers === 0 && !ps.dht) {
      hint = 'This gateway cannot look for peers: the magnet names no tracker (tr=) and the DHT is off. Add a magnet with trackers, or a .torrent file.'
    } else {
      hint = 'No peer found yet: the torrent may have no seeders right now. Check the magnet (trackers in tr=), or add the .torrent file.'
    }
  }
  return { text, hint }
}
