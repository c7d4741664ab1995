// The player shared by the watch page and the embed page: plays one file of a torrent through
// webtorrent in the page (peers: the gateway and other browsers over WebRTC, plus the gateway's
// webseed), streamed into <video> by webtorrent's service worker, and falls back to the gateway's
// own /stream URL where that cannot work. The decisions are pure functions in playback.js; this
// module does the I/O around them, one named step at a time (see start).
//
// Quick start: the page's HTML starts the video on the file's /stream (the gateway serves it from
// hash-checked pieces), so that the first frame comes as fast as from a plain web server, before
// any script has run. The player then starts webtorrent and, once it holds what comes next,
// hands the picture over to webtorrent's stream without a visible seam (handOver) and closes the
// HTTP stream: from there the pieces come from peers, as without the quick start.
//
// window.swarmgate is the page's state, for people and tests alike, refreshed every 250 ms:
//   { state: "loading"|"playing"|"error", mode: "webtorrent"|"stream", source, message, infohash,
//     file,
//     stats: { gatewayPeers, browserPeers, webseedPeers, downloadSpeed, uploadSpeed,
//              fromGateway, fromBrowsers, fromWebseed, uploaded, p2pShare },
//     wires: [{ kind, peerChoking, amChoking, requests, peerRequests, down, up }] }
// Speeds are bytes/s, the from* counters and uploaded are bytes, p2pShare = fromBrowsers / all
// bytes downloaded (0..1). wires are the torrent's peers (not the webseed), for diagnosis: who
// chokes whom, requests outstanding each way, speeds in bytes/s.
// plan: { how: "direct"|"remux"|"transcode", hls, why, audio } is how this browser plays the
// file (playplan.js): direct through webtorrent, or HLS from the gateway
// (vod.js: mode "hls", or "hls-native" where the browser plays HLS itself), with
// hls: { variant, stream, playlist, verified, rejected } and stats.verified/rejected counting
// segments from peers that did and did not match the gateway's signed entries. source is what
// the video reads now: "stream" (the gateway's /stream: the quick start, or mode "stream") or
// "webtorrent" (webtorrent's stream, after the hand-over); stats count webtorrent's bytes only.
//
// The query may carry ?audio=N (the audio stream to play, through HLS unless it is the file's
// first), ?p2p=0 (HLS from the gateway alone), and ?caps=... (what the browser is taken to
// decode, for tests and debugging: playplan.js's browserCaps).

import {
  ALONE_MS, Failure, HANDOVER_LEAD_S, STALL_MS, handoverMoment, handoverTarget, leadAfter,
  infohashFromPath, isInfohash, isPlayable, isStalled, mimeType, parseBoot, pickFile, playbackPath,
  sameURL, srtToVtt, subtitleTrack, subtitlesFor, swarmStats, videoErrorAction, waitingForMetadata,
  webseedURLs, wireKind, aloneTooLong
} from './playback.js'

// The watch page lists the playable files; other pages may want these too.
export { isPlayable, isSubtitle, srtToVtt } from './playback.js'
import { browserCaps, embeddedSubtitles, playPlan } from './playplan.js'
import { HLSRefused, playHLS } from './vod.js'
import { rejoinTorrent } from './rejoin.js'
import { tellNeeds } from './needs.js'

const VENDOR = '/static/vendor/webtorrent.min.js'
const WORKER = '/sw.min.js'
const STATS_EVERY_MS = 250
// With the quick start, webtorrent starts once the first frame is up (or this long after the
// player's start, whichever comes first): until then the two cores are the video's.
const QUICK_START_GRACE_MS = 3000
// How often the hand-over looks at the playing video, and how long the waiting one may take to
// be ready at its moment before it waits further ahead.
const HANDOVER_POLL_MS = 15
const HANDOVER_READY_MS = 20_000
const NONE = { gateway: 0, browsers: 0, webseed: 0, other: 0 }

export const sg = {
  state: 'loading',
  mode: 'webtorrent',
  source: '',
  // The hand-over's tries, for diagnosis: {lead, target, readyMs, moment, at} (moment 'timeout'
  // when the waiting video was not ready in time; at: the playing video's time then).
  handover: [],
  message: '',
  infohash: '',
  file: -1,
  stats: swarmStats({ peers: NONE, from: NONE, uploaded: 0 }),
  wires: []
}
window.swarmgate = sg

// In an iframe, the embedding page hears the state once a second: {type: "swarmgate", ...state}.
// <swarm-player> turns it into its .state and a "swarmgate" event.
if (window.parent !== window) {
  setInterval(() => window.parent.postMessage({ type: 'swarmgate', ...sg }, '*'), 1000)
}

// start plays the file named by the page's URL (/watch/<ih>?file=N or /embed/<ih>?file=N).
// hooks.onTorrent(torrent, file, config) runs once the torrent and the file are known.
export async function start ({ video, messageEl, hooks = {} }) {
  sg.infohash = infohashFromPath(location.pathname)
  const p = new Playback(video, messageEl)
  // The stream the page's HTML started the video on (the quick start), if any.
  const quick = video.getAttribute('src') || ''
  p.listenTo(video)
  // With the quick start this runs once the video plays (the page's loader waits for it).
  if (!video.paused && video.readyState >= HTMLMediaElement.HAVE_FUTURE_DATA) sg.state = 'playing'

  // Everything that does not depend on the torrent starts now, side by side: a first frame waits
  // for the slowest of them, not for their sum. Failures are settled here and reported where the
  // result is used. With the quick start the first frame needs none of them: webtorrent waits
  // for it.
  const boot = readBoot()
  const path = playbackPath({ secureContext: window.isSecureContext, hasServiceWorker: 'serviceWorker' in navigator, origin: location.origin })
  const early = path.mode !== 'webtorrent' ? null : quick ? startAfterFirstFrame(video) : startWorkerAndWebTorrent()
  try {
    const [config, torrent] = await Promise.all([readConfig(boot), marked('torrent', p.loadTorrent(boot))])
    const query = new URLSearchParams(location.search)
    p.chooseFile(torrent, query.get('file'))
    sg.plan = planFor(p.file, config, video, query)
    // The quick start is kept only for the file the player chose, played as it is.
    const quickHere = quick !== '' && sg.plan.how === 'direct' && sameURL(quick, p.file.stream_url, location.href)
    if (quick && !quickHere) p.stopQuickStart()
    hooks.onTorrent?.(torrent, p.file, config)
    loadSubtitles(torrent, p.file, () => p.video)
    if (config.transcode && config.transcode !== 'off') addEmbeddedSubtitles(p.file, p.video)
    if (sg.plan.how !== 'direct' && await p.playHLS(sg.plan, config, query)) return
    p.warnIfTypeUnknown()
    if (path.mode === 'stream') return p.playStream(path.why)
    await p.playThroughWebTorrent(config, torrent, early, boot, quickHere)
  } catch (err) {
    if (err instanceof Failure) p.fail(err.message, err.link)
    else p.fail(err.message || String(err))
  }
}

// Playback is one file played on one page: the gateway's view of the file, the webtorrent client
// while there is one, and the message the page shows about it.
class Playback {
  constructor (video, messageEl) {
    this.video = video
    this.messageEl = messageEl
    this.file = null // the gateway's view of the file being played
    this.client = null // the webtorrent client, while in webtorrent mode
    this.next = null // the video waiting to take the picture over (handOver), while it waits
    this.transient = false // the message is a hint that playing makes moot
    this.canPlay = 'maybe' // the video's canPlayType of the file's type
  }

  // say shows text (and link): an error unless isTransient (a hint that playing makes moot) or
  // isNote (how it plays, worth knowing but not a problem: grey, and in an embed a small badge
  // off the picture).
  say (text, { link, isTransient = false, isNote = false } = {}) {
    this.transient = isTransient && text !== ''
    this.messageEl.classList.toggle('hint', this.transient || isNote)
    this.messageEl.classList.toggle('note', isNote && text !== '')
    this.messageEl.replaceChildren()
    if (text) this.messageEl.append(text)
    if (link) {
      this.messageEl.append(' ', Object.assign(document.createElement('a'), { href: link, textContent: link, target: '_blank', rel: 'noopener' }))
    }
    sg.message = link ? `${text} ${link}` : text
  }

  // clearHint takes down a transient message (a hint that the page has got past).
  clearHint () {
    if (this.transient) this.say('')
  }

  fail (text, link) {
    sg.state = 'error'
    this.say(text, { link })
  }

  cannotPlay () {
    const f = this.file
    this.fail(`This browser cannot play ${f.path} (${f.mime}). Open the stream in VLC or mpv:`, f.stream_url)
  }

  // playHLS plays plan through the gateway's HLS; false when the gateway refused it (then the
  // page says why and plays the file as it is).
  async playHLS (plan, config, query) {
    try {
      await playHLS({
        sg, video: this.video, infohash: sg.infohash, file: this.file, plan, config,
        p2p: query.get('p2p') !== '0', onFatal: msg => this.fail(`${msg}. The stream, for VLC or mpv:`, this.file.stream_url)
      })
      this.say(`Playing through the gateway's ${plan.how}: ${plan.why}`, { isNote: true })
      return true
    } catch (err) {
      if (!(err instanceof HLSRefused)) throw err
      sg.plan = { ...plan, how: 'direct', hls: null, why: `the gateway did not make HLS: ${err.message}` }
      this.say(`The gateway cannot ${plan.how} this file (${err.message}): trying it as it is`, { isNote: true })
      return false
    }
  }

  // playStream falls back to the gateway's /stream of the file, saying why. A video already
  // playing it (the quick start) plays on.
  playStream (why) {
    if (this.client) {
      this.client.destroy()
      this.client = null
    }
    this.next?.remove()
    this.next = null
    sg.mode = 'stream'
    sg.source = 'stream'
    this.say(`${why}: playing from the gateway's stream`, { link: this.file.stream_url, isNote: true })
    if (!sameURL(this.video.getAttribute('src'), this.file.stream_url, location.href) || this.video.error) {
      this.video.src = this.file.stream_url
    }
    this.video.play().catch(() => {})
  }

  // stopQuickStart stops the stream the page's HTML started when the player plays otherwise
  // (another file, or HLS).
  stopQuickStart () {
    this.video.removeAttribute('src')
    this.video.load()
    if (sg.state === 'playing') sg.state = 'loading'
  }

  // listenTo turns a video's events into the page's state: playing, or an error that falls back
  // to /stream or is reported. Only the video that has the picture counts (this.video: a video
  // handed over from keeps quiet).
  listenTo (video) {
    video.addEventListener('playing', () => {
      if (video !== this.video || sg.state === 'error') return
      sg.state = 'playing'
      this.clearHint()
    })
    video.addEventListener('error', () => {
      if (video === this.video) this.videoFailed()
    })
  }

  videoFailed () {
    const err = this.video.error
    if (!err || !this.file || sg.state === 'error') return
    const what = err.message || 'media error ' + err.code
    if (sg.mode.startsWith('hls')) return this.fail(`Playback failed (${what}). The stream, for VLC or mpv:`, this.file.stream_url)
    switch (videoErrorAction({ mode: sg.mode, source: sg.source, canPlay: this.canPlay, code: err.code })) {
      case 'stream':
        this.playStream(`The in-browser torrent stream failed (${what})`)
        break
      case 'webtorrent':
        // The gateway's stream failed while webtorrent starts: the hand-over takes the
        // picture as soon as webtorrent's stream is ready.
        this.say(`The gateway's stream failed (${what}): waiting for the torrent stream`, { isTransient: true })
        break
      case 'cannot-play':
        this.cannotPlay()
        break
      default:
        this.fail(`Playback failed (${what}). The stream, for VLC or mpv:`, this.file.stream_url)
    }
  }

  // loadTorrent is the gateway's view of the torrent: the page's start-up data when it has it,
  // else fetched, waiting out a magnet's metadata.
  async loadTorrent (boot) {
    if (!isInfohash(sg.infohash)) throw new Failure('Unknown torrent: the address needs a 40-hex infohash')
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
        this.clearHint()
        return t
      }
      const wait = waitingForMetadata(t.peer_search)
      this.say(wait.hint ? `${wait.text}. ${wait.hint}` : wait.text, { isTransient: true })
      await sleep(2000)
    }
  }

  chooseFile (torrent, fileParam) {
    this.file = pickFile(torrent, fileParam, f => this.video.canPlayType(mimeType(f.mime)) !== '')
    sg.file = this.file.index
  }

  // warnIfTypeUnknown says, until playing proves it wrong, that this browser may not play the
  // file's type.
  warnIfTypeUnknown () {
    this.canPlay = this.video.canPlayType(mimeType(this.file.mime))
    if (this.canPlay === '') {
      this.say(`This browser may not play ${this.file.mime}. If it does not start, open the stream in VLC or mpv:`, { link: this.file.stream_url, isTransient: true })
    }
  }

  // playThroughWebTorrent plays the file with webtorrent once the service worker and webtorrent
  // (started early) are ready, falling back to /stream when either fails. With the quick start
  // (quick) the video plays the gateway's /stream meanwhile, and webtorrent's stream takes over
  // once it is ready.
  async playThroughWebTorrent (config, torrent, early, boot, quick) {
    sg.source = quick ? 'stream' : 'webtorrent'
    // An error of the quick start's stream before the player listened.
    if (quick && this.video.error) this.videoFailed()
    const metainfoReady = settle(marked('metainfo', fetchMetainfo(boot)))
    const worker = await early.workerReady
    if (sg.state === 'error') return
    if (worker.err) return this.playStream(`Service worker unavailable (${worker.err.message})`)
    if (typeof RTCPeerConnection === 'undefined') {
      this.say("WebRTC unavailable: playing from the gateway's webseed")
    }
    let wf
    try {
      ({ client: this.client, file: wf } = await startWebTorrent({
        config,
        numPieces: torrent.pieces,
        file: this.file,
        registration: worker.value,
        vendorReady: early.vendorReady,
        metainfoReady
      }))
    } catch (err) {
      return this.playStream(`The in-browser torrent client failed (${err.message})`)
    }
    this.fallBackOnClientError()
    this.fallBackWhenStalled()
    if (quick) {
      this.handOver(wf).catch(err => {
        if (sg.mode === 'webtorrent' && sg.state !== 'error') this.playStream(`Handing over to the torrent stream failed (${err.message})`)
      })
      return
    }
    wf.streamTo(this.video)
    mark('streaming')
    this.video.play().catch(() => {})
  }

  // handOver moves the picture from the gateway's /stream (the quick start) to webtorrent's
  // stream of the same file without a visible seam: a second video, invisible over the first,
  // waits on webtorrent's stream at a moment just ahead of the playhead (handoverTarget); when
  // the first reaches it (handoverMoment), the second is shown and plays on, and the first is
  // stopped, which closes its HTTP stream. Seeking or pausing meanwhile moves the moment.
  async handOver (wf) {
    const a = this.video
    const b = document.createElement('video')
    b.className = 'handover'
    b.controls = a.controls
    b.playsInline = true
    b.muted = true
    b.preload = 'auto'
    this.next = b
    a.after(b)
    wf.streamTo(b)
    mark('handover-start')
    let lead = HANDOVER_LEAD_S
    for (;;) {
      if (this.next !== b) return // the page went another way (playStream)
      const target = handoverTarget(a, lead)
      // Where the first video stands still, a frame to show is enough; where it plays, the
      // second must be able to play on at once.
      const still = a.paused || a.ended || a.error
      const t0 = performance.now()
      const tried = { lead, target, readyMs: 0, moment: '', at: 0 }
      sg.handover.push(tried)
      try {
        await readyAt(b, target, still ? HTMLMediaElement.HAVE_CURRENT_DATA : HTMLMediaElement.HAVE_FUTURE_DATA, HANDOVER_READY_MS)
        tried.readyMs = Math.round(performance.now() - t0)
      } catch (err) {
        if (!(err instanceof Timeout)) throw err
        tried.moment = 'timeout'
        tried.at = a.currentTime
        // Webtorrent has not got there yet (a busy uplink, a busy machine): the quick start plays
        // on meanwhile, and giving up would leave the viewer on HTTP to the end. Wait further on.
        if (this.next !== b) return
        lead = leadAfter('timeout', lead, HANDOVER_READY_MS / 1000, still)
        continue
      }
      if (this.next !== b) return
      const moment = a.error ? 'switch' : await momentReached(a, target)
      tried.moment = moment
      tried.at = a.currentTime
      if (this.next !== b) return
      if (moment === 'switch') break
      lead = leadAfter(moment, lead, tried.readyMs / 1000, still)
    }
    // A video that autoplays and has not started yet (its first bytes came slowly: a busy
    // uplink) is about to play: the one handed over to plays.
    const autoplayPending = a.autoplay && a.paused && a.played.length === 0
    const playing = a.error ? true : (!a.paused || autoplayPending) && !a.ended
    b.muted = a.muted
    b.volume = a.volume
    b.playbackRate = a.playbackRate
    for (const t of [...a.querySelectorAll('track')]) {
      const mode = t.track.mode
      b.append(t)
      t.track.mode = mode
    }
    this.next = null
    this.video = b
    this.listenTo(b)
    b.classList.remove('handover')
    b.id = a.id
    a.removeAttribute('id')
    if (playing) b.play().catch(() => {})
    a.pause()
    a.remove()
    a.removeAttribute('src')
    a.load()
    sg.source = 'webtorrent'
    mark('handover')
    if (sg.state !== 'error') this.clearHint()
  }

  fallBackOnClientError () {
    this.client.on('error', err => {
      if (sg.mode === 'webtorrent' && sg.state !== 'error') this.playStream(`The in-browser torrent client failed (${err.message || err})`)
    })
  }

  // fallBackWhenStalled plays /stream when webtorrent gets not a byte from anyone for STALL_MS.
  fallBackWhenStalled () {
    const started = Date.now()
    const check = setInterval(() => {
      if (sg.mode !== 'webtorrent' || (sg.state !== 'loading' && sg.source !== 'stream')) return clearInterval(check)
      if (isStalled(sg.stats, Date.now() - started)) {
        clearInterval(check)
        this.playStream(`No data from peers or the webseed in ${STALL_MS / 1000} s`)
      }
    }, 1000)
  }
}

// planFor decides how this browser plays file (playplan.js), asking the browser itself unless
// ?caps= overrides it.
function planFor (file, config, video, query) {
  const caps = browserCaps({
    canPlayType: t => video.canPlayType(t),
    MediaSource: window.MediaSource || window.ManagedMediaSource
  }, query.get('caps') || '')
  const audio = query.get('audio')
  return playPlan(file, { ...caps, audioTrack: audio === null ? undefined : Number(audio), transcode: config.transcode || 'off' })
}

// addEmbeddedSubtitles offers the file's own text subtitle tracks, which the gateway serves as
// WebVTT; the one in the viewer's language is on.
function addEmbeddedSubtitles (file, video) {
  const info = file?.media?.state === 'done' ? file.media.info : null
  for (const s of embeddedSubtitles(info, navigator.language)) {
    const track = Object.assign(document.createElement('track'), {
      kind: 'subtitles',
      label: s.label,
      src: `/hls/${sg.infohash}/${file.index}/subtitles/${s.index}.vtt`,
      default: s.on
    })
    if (s.srclang) track.srclang = s.srclang
    video.append(track)
  }
}

// readBoot is the start-up data the gateway rendered into the page, or null.
function readBoot () {
  return parseBoot(document.getElementById('swarmgate-boot')?.textContent)
}

// readConfig is what the gateway tells pages (tracker, ICE servers, its peer id): from the
// start-up data, else fetched.
async function readConfig (boot) {
  return boot?.config ?? getJSON('/api/config')
}

// startAfterFirstFrame is startWorkerAndWebTorrent once the video shows its first frame (or
// fails, or QUICK_START_GRACE_MS after now): the quick start's first frame does not share the
// CPU with webtorrent's start.
function startAfterFirstFrame (video) {
  const go = new Promise(resolve => {
    if (video.readyState >= HTMLMediaElement.HAVE_CURRENT_DATA || video.error) return resolve()
    const timer = setTimeout(resolve, QUICK_START_GRACE_MS)
    const done = () => {
      clearTimeout(timer)
      resolve()
    }
    for (const ev of ['loadeddata', 'error', 'emptied']) video.addEventListener(ev, done, { once: true })
  })
  const started = go.then(startWorkerAndWebTorrent)
  return { workerReady: started.then(e => e.workerReady), vendorReady: started.then(e => e.vendorReady) }
}

// startWorkerAndWebTorrent registers the service worker and imports webtorrent, side by side;
// each promise settles to {value} or {err}.
function startWorkerAndWebTorrent () {
  return {
    workerReady: settle(marked('worker', withTimeout(registerWorker(), 15_000, 'Starting the service worker'))),
    vendorReady: settle(marked('webtorrent', import(VENDOR)))
  }
}

// fetchMetainfo is the torrent's .torrent: from the start-up data, else from the gateway.
async function fetchMetainfo (boot) {
  if (boot?.metainfo) return Uint8Array.from(atob(boot.metainfo), c => c.charCodeAt(0))
  const res = await fetch(`/api/torrents/${sg.infohash}/metainfo`)
  if (!res.ok) throw new Error(`metainfo: HTTP ${res.status}`)
  return new Uint8Array(await res.arrayBuffer())
}

// startWebTorrent opens the torrent in a webtorrent client, selects the file and serves it
// through the service worker; it returns the client and its file, ready to stream.
async function startWebTorrent ({ config, numPieces, file, registration, vendorReady, metainfoReady }) {
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
      // Parsed, not yet used: the webseed gets its full URL in time.
      const urls = webseedURLs(torrent.urlList, torrent.name, torrent.files?.length)
      if (urls !== torrent.urlList) torrent.urlList = urls
    })
    // A dropped tracker socket (its node died, the gateway restarted) is reopened within
    // seconds, not webtorrent's 10 s to 5 min: meanwhile the page meets no new peer.
    rejoinTorrent(torrent)
    // The gateway offers this page the pieces its player waits on, not the film's start.
    tellNeeds(torrent)
    const gateway = { id: (config.peer_id || '').toLowerCase(), prefix: (config.peer_id_prefix || '').toLowerCase() }
    watchStats(torrent, gateway)
    dropWebseedOnceGatewayWire(torrent, gateway)
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
    window.addEventListener('pagehide', () => wt.destroy(), { once: true })
    return { client: wt, file: wf }
  } catch (err) {
    wt.destroy()
    throw err
  }
}

// dropWebseedOnceGatewayWire closes the webseed once the gateway's own WebRTC wire is up. The
// webseed brings the first bytes while WebRTC connects (and everything where there is no
// WebRTC); after that the gateway's wire carries the same pieces, and over it a gateway whose
// uplink is capped can turn down a piece another browser has (--upload-sharing), which plain
// HTTP cannot: with the webseed open, five watch pages under a cap took 3.7 copies of the file,
// all over HTTP, and stalled (docs/bench.md, Offload).
function dropWebseedOnceGatewayWire (torrent, gateway) {
  const check = w => {
    if (wireKind(w, gateway.id, gateway.prefix) !== 'gateway') return
    torrent.removeListener('wire', check)
    const urls = torrent.urlList.slice()
    torrent.urlList = []
    for (const x of torrent.wires) if (x.type === 'webSeed') x.destroy()
    mark('webseed-closed')
    restoreWebseedWhenAlone(torrent, urls, () => dropWebseedOnceGatewayWire(torrent, gateway))
  }
  torrent.on('wire', check)
}

// restoreWebseedWhenAlone brings the webseed back when the page has had no wire for ALONE_MS
// and the torrent is not done, then calls rearm (the next gateway wire closes it again).
function restoreWebseedWhenAlone (torrent, urls, rearm) {
  let aloneSince = 0
  const tick = setInterval(() => {
    if (torrent.destroyed) return clearInterval(tick)
    const r = aloneTooLong(aloneSince, Date.now(), torrent.wires.length, torrent.done)
    aloneSince = r.aloneSince
    if (!r.restore) return
    clearInterval(tick)
    for (const u of urls) torrent.addWebSeed(u)
    mark('webseed-restored')
    console.warn('swarmgate: no peer for ' + ALONE_MS / 1000 + ' s: fetching from the gateway over HTTP again')
    rearm()
  }, 1000)
}

// watchStats keeps sg.stats up to date with the torrent's wires, by kind (wireKind). Bytes are
// counted as they arrive, so wires that close keep their share.
function watchStats (torrent, gateway) {
  const kind = w => wireKind(w, gateway.id, gateway.prefix)
  const from = { gateway: 0, browsers: 0, webseed: 0, other: 0 }
  let uploaded = 0
  const seen = new WeakSet()
  const attach = w => {
    if (seen.has(w)) return
    seen.add(w)
    from[kind(w)] += w.downloaded
    if (w.type !== 'webSeed') uploaded += w.uploaded
    w.on('download', n => { from[kind(w)] += n })
    w.on('upload', n => { if (w.type !== 'webSeed') uploaded += n })
  }
  torrent.on('wire', attach)
  const tick = setInterval(() => {
    if (torrent.destroyed) {
      clearInterval(tick)
      return
    }
    const peers = { gateway: 0, browsers: 0, webseed: 0, other: 0 }
    const wires = []
    for (const w of torrent.wires) {
      attach(w)
      const k = kind(w)
      peers[k]++
      if (k !== 'webseed') wires.push(wireState(w, k))
    }
    sg.stats = swarmStats({ peers, from, uploaded, downloadSpeed: torrent.downloadSpeed, uploadSpeed: torrent.uploadSpeed })
    sg.wires = wires
  }, STATS_EVERY_MS)
}

// wireState is one peer wire as sg.wires shows it.
function wireState (w, kind) {
  return {
    kind,
    peerChoking: w.peerChoking,
    amChoking: w.amChoking,
    requests: w.requests.length,
    peerRequests: w.peerRequests.length,
    down: Math.round(w.downloadSpeed()),
    up: Math.round(w.uploadSpeed())
  }
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
// stream, converted to WebVTT when needed) to the video that has the picture then (video()).
// Those named like the video come first.
async function loadSubtitles (torrent, file, video) {
  for (const s of subtitlesFor(torrent.files, file)) {
    try {
      const res = await fetch(s.stream_url)
      if (!res.ok) continue
      let text = await res.text()
      if (/\.srt$/i.test(s.path)) text = srtToVtt(text)
      const { label, srclang } = subtitleTrack(s.path)
      const track = Object.assign(document.createElement('track'), {
        kind: 'subtitles',
        label,
        src: URL.createObjectURL(new Blob([text], { type: 'text/vtt' }))
      })
      if (srclang) track.srclang = srclang
      video().append(track)
    } catch {}
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

// readyAt resolves once video (paused) stands at time t with readyState need (HAVE_CURRENT_DATA:
// a frame to show; HAVE_FUTURE_DATA: data to play on); it rejects on the video's error, or with
// a Timeout after ms.
function readyAt (video, t, need, ms) {
  return new Promise((resolve, reject) => {
    let sought = false
    const check = () => {
      if (video.error) return finish(reject, new Error(video.error.message || 'media error ' + video.error.code))
      if (video.readyState < HTMLMediaElement.HAVE_METADATA) return
      if (!sought) {
        sought = true
        if (Math.abs(video.currentTime - t) > 0.001) video.currentTime = t
      }
      if (!video.seeking && video.readyState >= need) finish(resolve)
    }
    const events = ['loadedmetadata', 'seeked', 'canplay', 'progress', 'error']
    const timer = setTimeout(() => finish(reject, new Timeout(`Getting the torrent stream ready took longer than ${ms / 1000} s`)), ms)
    const finish = (settle, value) => {
      clearTimeout(timer)
      for (const ev of events) video.removeEventListener(ev, check)
      settle(value)
    }
    for (const ev of events) video.addEventListener(ev, check)
    check()
  })
}

// momentReached watches the playing video until handoverMoment says something other than
// 'wait' about target, and resolves to that.
function momentReached (video, target) {
  return new Promise(resolve => {
    let last = video.currentTime
    let lastAt = performance.now()
    const timer = setInterval(() => {
      const now = video.currentTime
      const at = performance.now()
      const m = video.error
        ? 'switch'
        : handoverMoment({ now, last, elapsed: (at - lastAt) / 1000, rate: video.playbackRate, target, paused: video.paused, seeking: video.seeking, ended: video.ended })
      last = now
      lastAt = at
      if (m === 'wait') return
      clearInterval(timer)
      resolve(m)
    }, HANDOVER_POLL_MS)
  })
}

// Timeout is withTimeout's rejection.
class Timeout extends Error {}

function withTimeout (promise, ms, what) {
  let timer
  return Promise.race([
    promise,
    new Promise((_resolve, reject) => {
      timer = setTimeout(() => reject(new Timeout(`${what} took longer than ${ms / 1000} s`)), ms)
    })
  ]).finally(() => clearTimeout(timer))
}
