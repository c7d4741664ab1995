// The player shared by the watch page and the embed page: plays one file of a torrent through
// webtorrent in the page (peers: the gateway and other browsers over WebRTC, plus the gateway's
// webseed), streamed into <video> by webtorrent's service worker, and falls back to the gateway's
// own /stream URL where that cannot work.
//
// window.swarmgate is the page's state, for people and tests alike, refreshed every 250 ms:
//   { state: "loading"|"playing"|"error", mode: "webtorrent"|"stream", message, infohash, file,
//     stats: { gatewayPeers, browserPeers, webseedPeers, downloadSpeed, uploadSpeed,
//              fromGateway, fromBrowsers, fromWebseed, uploaded, p2pShare } }
// Speeds are bytes/s, the from* counters and uploaded are bytes, p2pShare = fromBrowsers / all
// bytes downloaded (0..1).

const VENDOR = '/static/vendor/webtorrent.min.js'
const WORKER = '/sw.min.js'
const STATS_EVERY_MS = 250
// With webtorrent running but not a byte from anyone this long, play from /stream instead.
const STALL_MS = 20_000

function zeroStats () {
  return {
    gatewayPeers: 0,
    browserPeers: 0,
    webseedPeers: 0,
    downloadSpeed: 0,
    uploadSpeed: 0,
    fromGateway: 0,
    fromBrowsers: 0,
    fromWebseed: 0,
    uploaded: 0,
    p2pShare: 0
  }
}

export const sg = {
  state: 'loading',
  mode: 'webtorrent',
  message: '',
  infohash: '',
  file: -1,
  stats: zeroStats()
}
window.swarmgate = sg

// In an iframe, the embedding page hears the state once a second: {type: "swarmgate", ...state}.
// <swarm-player> turns it into its .state and a "swarmgate" event.
if (window.parent !== window) {
  setInterval(() => window.parent.postMessage({ type: 'swarmgate', ...sg }, '*'), 1000)
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

class Failure extends Error {
  constructor (message, link) {
    super(message)
    this.link = link
  }
}

async function getJSON (url) {
  const res = await fetch(url, { cache: 'no-store' })
  let body = null
  try {
    body = await res.json()
  } catch {}
  if (!res.ok) {
    const err = new Error(body?.error || `${url}: HTTP ${res.status}`)
    err.status = res.status
    throw err
  }
  return body
}

// settle turns a promise into one that resolves to {value} or {err}: work started early whose
// failure only matters where its result is used, and must not go unhandled until then.
const settle = promise => promise.then(value => ({ value }), err => ({ err }))

// mark records a step towards the first frame (User Timing: the browser's devtools and the
// time-to-first-frame benchmark read them).
const mark = name => performance.mark(`swarmgate:${name}`)
const marked = (name, promise) => promise.finally(() => mark(name))

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

function withTimeout (promise, ms, what) {
  let timer
  return Promise.race([
    promise,
    new Promise((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms / 1000} s`)), ms)
    })
  ]).finally(() => clearTimeout(timer))
}

// start plays the file named by the page's URL (/watch/<ih>?file=N or /embed/<ih>?file=N).
// hooks.onTorrent(torrent, file, config) runs once the torrent and the file are known.
export async function start ({ video, messageEl, hooks = {} }) {
  const m = location.pathname.match(/^\/(?:watch|embed)\/([^/]+)\/?$/)
  sg.infohash = m ? decodeURIComponent(m[1]).toLowerCase() : ''
  const fileParam = new URLSearchParams(location.search).get('file')

  let file = null // the gateway's view of the file being played
  let client = null // the webtorrent client, while in webtorrent mode
  let transient = false // the message is a hint that playing makes moot
  let canPlay = 'maybe'

  function setMessage (text, { link, isTransient = false } = {}) {
    transient = isTransient && text !== ''
    messageEl.replaceChildren()
    if (text) messageEl.append(text)
    if (link) {
      messageEl.append(' ', Object.assign(document.createElement('a'), { href: link, textContent: link, target: '_blank', rel: 'noopener' }))
    }
    sg.message = link ? `${text} ${link}` : text
  }

  function fail (text, link) {
    sg.state = 'error'
    setMessage(text, { link })
  }

  function cannotPlay () {
    fail(`This browser cannot play ${file.path} (${file.mime}). Open the stream in VLC or mpv:`, file.stream_url)
  }

  function playStream (why) {
    if (client) {
      client.destroy()
      client = null
    }
    sg.mode = 'stream'
    setMessage(`${why}: playing from the gateway's stream`, { link: file.stream_url })
    video.src = file.stream_url
    video.play().catch(() => {})
  }

  video.addEventListener('playing', () => {
    if (sg.state === 'error') return
    sg.state = 'playing'
    if (transient) setMessage('')
  })
  video.addEventListener('error', () => {
    const err = video.error
    if (!err || !file || sg.state === 'error') return
    if (sg.mode === 'webtorrent' && canPlay !== '') {
      // The worker's stream failed, or the codec did: /stream tells the two apart.
      playStream(`The in-browser torrent stream failed (${err.message || 'media error ' + err.code})`)
    } else if (err.code === MediaError.MEDIA_ERR_SRC_NOT_SUPPORTED || err.code === MediaError.MEDIA_ERR_DECODE) {
      cannotPlay()
    } else {
      fail(`Playback failed (${err.message || 'media error ' + err.code}). The stream, for VLC or mpv:`, file.stream_url)
    }
  })

  // Everything that does not depend on the torrent starts now, side by side: a first frame waits
  // for the slowest of them, not for their sum. Failures are settled here and reported where the
  // result is used.
  const boot = readBoot()
  const noWorker = serviceWorkerProblem()
  const workerReady = noWorker ? null : settle(marked('worker', withTimeout(registerWorker(), 15_000, 'Starting the service worker')))
  const vendorReady = noWorker ? null : settle(marked('webtorrent', import(VENDOR)))
  try {
    const [config, torrent] = await Promise.all([boot?.config ?? getJSON('/api/config'), marked('torrent', loadTorrent())])
    file = pickFile(torrent)
    sg.file = file.index
    hooks.onTorrent?.(torrent, file, config)
    loadSubtitles(torrent, file, video)

    canPlay = video.canPlayType(file.mime.split(';')[0])
    if (canPlay === '') {
      setMessage(`This browser may not play ${file.mime}. If it does not start, open the stream in VLC or mpv:`, { link: file.stream_url, isTransient: true })
    }

    if (noWorker) return playStream(noWorker)
    const metainfoReady = settle(marked('metainfo', fetchMetainfo()))
    const worker = await workerReady
    if (worker.err) return playStream(`Service worker unavailable (${worker.err.message})`)
    if (typeof RTCPeerConnection === 'undefined') {
      setMessage("WebRTC unavailable: playing from the gateway's webseed")
    }
    try {
      client = await startWebTorrent(config, torrent.pieces, file, worker.value, video, vendorReady, metainfoReady)
    } catch (err) {
      return playStream(`The in-browser torrent client failed (${err.message})`)
    }
    client.on('error', err => {
      if (sg.mode === 'webtorrent' && sg.state !== 'error') playStream(`The in-browser torrent client failed (${err.message || err})`)
    })
    const started = Date.now()
    const stallCheck = setInterval(() => {
      if (sg.mode !== 'webtorrent' || sg.state !== 'loading') return clearInterval(stallCheck)
      const s = sg.stats
      if (s.fromGateway + s.fromBrowsers + s.fromWebseed === 0 && Date.now() - started > STALL_MS) {
        clearInterval(stallCheck)
        playStream(`No data from peers or the webseed in ${STALL_MS / 1000} s`)
      }
    }, 1000)
  } catch (err) {
    if (err instanceof Failure) fail(err.message, err.link)
    else fail(err.message || String(err))
  }

  // loadTorrent fetches the gateway's view of the torrent, waiting out a magnet's metadata.
  async function loadTorrent () {
    if (!/^[0-9a-f]{40}$/.test(sg.infohash)) throw new Failure('Unknown torrent: the address needs a 40-hex infohash')
    if (boot?.torrent?.state && boot.torrent.state !== 'metadata') return boot.torrent
    for (;;) {
      let t
      try {
        t = await getJSON(`/api/torrents/${sg.infohash}`)
      } catch (err) {
        if (err.status === 404 || err.status === 400) throw new Failure(`Unknown torrent ${sg.infohash}: add it on the gateway's home page first`)
        throw err
      }
      if (t.state !== 'metadata') {
        if (transient) setMessage('')
        return t
      }
      setMessage("Waiting for the torrent's metadata from its peers…", { isTransient: true })
      await sleep(2000)
    }
  }

  function pickFile (t) {
    if (fileParam !== null) {
      const f = /^\d+$/.test(fileParam) ? t.files.find(f => f.index === Number(fileParam)) : undefined
      if (!f) throw new Failure(`This torrent has no file ${fileParam} (it has ${t.files.length}, numbered from 0)`)
      if (!isPlayable(f)) throw new Failure(`${f.path} is not video or audio (${f.mime}). Its stream:`, f.stream_url)
      return f
    }
    // The largest file this browser says it may play, else the largest video or audio at all.
    const playsHere = f => video.canPlayType(f.mime.split(';')[0]) !== ''
    const f = t.files.filter(isPlayable).sort((a, b) => playsHere(b) - playsHere(a) || b.length - a.length)[0]
    if (!f) throw new Failure('This torrent has no playable file (no video or audio)')
    return f
  }

  // Stats: a wire is the gateway when its peer id is the gateway's, a webseed when webtorrent made
  // it for a url-list entry, and another browser otherwise. Bytes are counted as they arrive, so
  // wires that close keep their share.
  function watchStats (torrent, gatewayId) {
    const from = { gateway: 0, browsers: 0, webseed: 0, other: 0 }
    let uploaded = 0
    const seen = new WeakSet()
    const kindOf = w =>
      w.type === 'webSeed' ? 'webseed' : (w.peerId || '').toLowerCase() === gatewayId ? 'gateway' : w.type === 'webrtc' ? 'browsers' : 'other'
    const attach = w => {
      if (seen.has(w)) return
      seen.add(w)
      from[kindOf(w)] += w.downloaded
      if (w.type !== 'webSeed') uploaded += w.uploaded
      w.on('download', n => { from[kindOf(w)] += n })
      w.on('upload', n => { if (w.type !== 'webSeed') uploaded += n })
    }
    torrent.on('wire', attach)
    const tick = setInterval(() => {
      if (torrent.destroyed) {
        clearInterval(tick)
        return
      }
      const peers = { gateway: 0, browsers: 0, webseed: 0, other: 0 }
      for (const w of torrent.wires) {
        attach(w)
        peers[kindOf(w)]++
      }
      const all = from.gateway + from.browsers + from.webseed + from.other
      sg.stats = {
        gatewayPeers: peers.gateway,
        browserPeers: peers.browsers,
        webseedPeers: peers.webseed,
        downloadSpeed: Math.round(torrent.downloadSpeed || 0),
        uploadSpeed: Math.round(torrent.uploadSpeed || 0),
        fromGateway: from.gateway,
        fromBrowsers: from.browsers,
        fromWebseed: from.webseed,
        uploaded,
        p2pShare: all > 0 ? from.browsers / all : 0
      }
    }, STATS_EVERY_MS)
  }

  async function fetchMetainfo () {
    if (boot?.metainfo) return Uint8Array.from(atob(boot.metainfo), c => c.charCodeAt(0))
    const res = await fetch(`/api/torrents/${sg.infohash}/metainfo`)
    if (!res.ok) throw new Error(`metainfo: HTTP ${res.status}`)
    return new Uint8Array(await res.arrayBuffer())
  }

  async function startWebTorrent (config, numPieces, file, registration, video, vendorReady, metainfoReady) {
    const [vendor, meta] = await Promise.all([vendorReady, metainfoReady])
    if (vendor.err) throw vendor.err
    if (meta.err) throw meta.err
    const WebTorrent = vendor.value.default
    const metainfo = meta.value
    // The gateway's ICE servers only (maybe none): never webtorrent's default public STUN servers.
    const wt = new WebTorrent({ tracker: { rtcConfig: { iceServers: config.ice_servers || [] } } })
    try {
      // The metainfo names the gateway's tracker and webseed: no wait for metadata. Only the
      // played file is fetched.
      // The store is new (and destroyed with the page): an empty startup bitfield says so, which
      // spares webtorrent reading every piece back from storage to hash it before 'ready'.
      const torrent = wt.add(metainfo, {
        deselect: true,
        destroyStoreOnDestroy: true,
        bitfield: new Uint8Array(Math.ceil(numPieces / 8))
      })
      torrent.once('infoHash', () => {
        // BEP 19 says a url-list entry ending in "/" gets the name appended for a single-file
        // torrent; webtorrent requests it as is. Hand it the full URL (parsed, not yet used).
        if (torrent.files?.length === 1 && Array.isArray(torrent.urlList)) {
          torrent.urlList = torrent.urlList.map(u => u.endsWith('/') ? u + encodeURIComponent(torrent.name) : u)
        }
      })
      watchStats(torrent, (config.peer_id || '').toLowerCase())
      await withTimeout(new Promise((resolve, reject) => {
        if (torrent.ready) return resolve()
        torrent.once('ready', resolve)
        torrent.once('error', reject)
      }), 30_000, 'Opening the torrent')
      mark('ready')
      const wf = torrent.files[file.index]
      if (!wf || wf.length !== file.length) throw new Error(`file ${file.index} differs between the gateway and the metainfo`)
      wf.select()
      wt.createServer({ controller: registration })
      wf.streamTo(video)
      mark('streaming')
      video.play().catch(() => {})
      window.addEventListener('pagehide', () => wt.destroy(), { once: true })
      return wt
    } catch (err) {
      wt.destroy()
      throw err
    }
  }
}

// readBoot is the start-up data the gateway rendered into the page (config, torrent, metainfo
// in base64), or null: the player then fetches each.
function readBoot () {
  const el = document.getElementById('swarmgate-boot')
  if (!el) return null
  try {
    return JSON.parse(el.textContent)
  } catch {
    return null
  }
}

// serviceWorkerProblem says why webtorrent cannot stream into <video> here, or '' when it can.
function serviceWorkerProblem () {
  if (!window.isSecureContext) {
    return `No service worker: ${location.origin} is not a secure context (use https, or localhost)`
  }
  if (!('serviceWorker' in navigator)) return 'No service worker in this browser'
  return ''
}

// registerWorker registers webtorrent's worker at the root and waits until it controls the page.
async function registerWorker () {
  const sw = navigator.serviceWorker
  // The worker asks every open page of the site for each /webtorrent/ URL and takes the first
  // answer, and webtorrent answers 404 for torrents it does not have: only the page playing the
  // torrent may answer (other tabs, other embeds on the same page).
  sw.addEventListener('message', ev => {
    const d = ev.data
    if (d?.type === 'webtorrent' && typeof d.url === 'string' &&
        !new URL(d.url).pathname.startsWith(`/webtorrent/${sg.infohash}/`)) {
      ev.stopImmediatePropagation()
    }
  })
  const reg = await sw.register(WORKER, { scope: '/' })
  const worker = reg.active || reg.waiting || reg.installing
  if (worker && worker.state !== 'activated') {
    await new Promise(resolve => {
      const check = () => {
        if (worker.state === 'activated' || worker.state === 'redundant') {
          worker.removeEventListener('statechange', check)
          resolve()
        }
      }
      worker.addEventListener('statechange', check)
      check()
    })
  }
  if (!reg.active) throw new Error('the worker did not activate')
  if (!sw.controller) {
    // The worker claims open pages when it activates; a page loaded with a hard reload stays
    // uncontrolled until the next load.
    await withTimeout(new Promise(resolve => sw.addEventListener('controllerchange', resolve, { once: true })), 3000,
      'Waiting for the worker to control the page (after a hard reload, reload normally)')
  }
  return reg
}

// loadSubtitles adds the torrent's .srt and .vtt files as text tracks (fetched from the gateway's
// stream, converted to WebVTT when needed). Those named like the video come first.
async function loadSubtitles (torrent, file, video) {
  const stem = file.path.replace(/\.[^./]+$/, '').toLowerCase()
  const subs = torrent.files.filter(isSubtitle)
    .sort((a, b) => Number(b.path.toLowerCase().startsWith(stem)) - Number(a.path.toLowerCase().startsWith(stem)))
    .slice(0, 20)
  for (const s of subs) {
    try {
      const res = await fetch(s.stream_url)
      if (!res.ok) continue
      let text = await res.text()
      if (/\.srt$/i.test(s.path)) text = srtToVtt(text)
      const name = s.path.split('/').pop()
      const lang = name.match(/[._-]([a-z]{2,3}(?:-[A-Za-z]{2})?)\.(?:srt|vtt)$/i)
      const track = Object.assign(document.createElement('track'), {
        kind: 'subtitles',
        label: name.replace(/\.(srt|vtt)$/i, ''),
        src: URL.createObjectURL(new Blob([text], { type: 'text/vtt' }))
      })
      if (lang) track.srclang = lang[1]
      video.append(track)
    } catch {}
  }
}
