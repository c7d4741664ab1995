// The live watch page, /live/{stream}: hls.js plays the gateway's HLS playlist, and
// p2p-media-loader shares segments between viewers over WebRTC, signalled through the gateway's
// own websocket tracker (/announce) in a swarm named by the stream id, with the gateway's ICE
// servers only. A segment from a peer is used only if its signed manifest entry verifies
// (Ed25519 with the stream id as public key, over live.Entry.SigningBytes) and its SHA-256 and
// size match the entry; otherwise it is counted as rejected and the loader fetches it over HTTP.
//
// window.swarmgate is the page's state, for people and tests alike, refreshed every 250 ms:
//   { state: "loading"|"playing"|"stalled"|"ended"|"error", mode: "live", p2p, message, stream,
//     stats: { fromGateway, fromBrowsers, uploaded, peers, p2pShare, behindLive, verified, rejected } }
// from* and uploaded are bytes; verified and rejected count segments from peers that did and did
// not match the signed manifest; behindLive is seconds behind the broadcaster's capture clock
// (Date.now() - hls.playingDate, from EXT-X-PROGRAM-DATE-TIME), -1 while unknown.
//
// ?latency=N asks hls.js to play N segments behind the live edge (default 5). ?p2p=0 plays with
// hls.js alone: no tracker, no WebRTC, nothing shared; every byte comes from the gateway (counted
// in fromGateway) and sg.p2p is false.

import { Hls, HlsJsP2PEngine } from '/static/vendor/live.min.js'
import { formatBytes } from './format.js'
import { setupShare } from './share.js'
import { startPlot } from './plot.js'
import { createVerifier, signingBytes, streamKey } from './verify.js'
import { rejoinHls } from './rejoin.js'

const STATS_EVERY_MS = 250
const STATUS_EVERY_MS = 3000

const boot = JSON.parse(document.getElementById('swarmgate-boot').textContent)
const stream = boot.stream
const base = '/live/' + stream

export const sg = {
  state: 'loading',
  mode: 'live',
  message: '',
  stream,
  stats: { fromGateway: 0, fromBrowsers: 0, uploaded: 0, peers: 0, p2pShare: 0, behindLive: -1, verified: 0, rejected: 0 }
}
window.swarmgate = sg

const $ = (id) => document.getElementById(id)

function say (text) {
  sg.message = text
  $('message').textContent = text
}

function fail (text) {
  sg.state = 'error'
  say(text)
}

// --- verification of segments from peers (verify.js) ---

const verifier = createVerifier({ stream, manifestURL: base + '/manifest.json', counts: sg.stats, label: 'live' })
export const { validateP2PSegment, checkSegment, verifyEntry, refreshManifest } = verifier
export { streamKey, signingBytes }

window.swarmgateLive = { validateP2PSegment, checkSegment, verifyEntry, streamKey, signingBytes, refreshManifest }

// --- the player ---

function render () {
  const s = sg.stats
  const all = s.fromGateway + s.fromBrowsers
  s.p2pShare = all ? s.fromBrowsers / all : 0
  if (!$('s-state')) return // the embed page (/live/{stream}/embed) shows no stats
  $('s-state').textContent = sg.state
  // Once the broadcast ended there is no live edge to be behind: the distance to it only grows.
  $('s-behind').textContent = sg.state === 'ended' || s.behindLive < 0 ? '–' : s.behindLive.toFixed(1) + ' s'
  $('s-peers').textContent = String(s.peers)
  $('s-http').textContent = formatBytes(s.fromGateway)
  $('s-p2p').textContent = formatBytes(s.fromBrowsers)
  $('s-uploaded').textContent = formatBytes(s.uploaded)
  $('s-share').textContent = Math.round(s.p2pShare * 100) + ' %'
  $('s-rejected').textContent = String(s.rejected)
}

async function status () {
  const res = await fetch('/api/live/' + stream, { cache: 'no-store' })
  if (res.status === 404) return null
  if (!res.ok) throw new Error('HTTP ' + res.status)
  return res.json()
}

async function watchStatus () {
  let st = null
  try { st = await status() } catch (err) { return }
  if (!st) {
    if (sg.state !== 'error') fail('The stream has gone from this gateway.')
    return
  }
  if (st.state === 'ended') {
    // The broadcaster ended it (the playlist has EXT-X-ENDLIST: the player plays to the end and
    // stops), or it sent nothing for the whole window.
    if (sg.state !== 'ended') {
      say('The broadcast has ended.')
      finishFromGateway()
    }
    sg.state = 'ended'
    unstickAtEnd()
  } else if (st.state === 'stalled') {
    sg.state = 'stalled'
    say('Stream stalled: no new segment from the broadcaster for a while. Waiting for it to come back…')
  } else if (sg.state === 'ended') {
    // A broadcast with the same key went on after the end: hls.js stopped reloading the
    // playlist at EXT-X-ENDLIST, so start over.
    location.reload()
  } else if (sg.state === 'stalled') {
    sg.state = 'loading'
    say('The stream is back.')
  }
}

// After the end no segment is new: what is left to play is on the gateway, and waiting for
// peers to offer it only risks a stall before the last segment. P2P stops; the segments that are
// left come over HTTP.
function finishFromGateway () {
  const e = window.swarmgateHls && window.swarmgateHls.p2pEngine
  if (e && e.applyDynamicConfig) e.applyDynamicConfig({ core: { isP2PDisabled: true } })
}

// unstickAtEnd restarts loading when an ended broadcast's video has stood still short of its end
// for two status polls: seen under load, hls.js waiting for a fragment that never came.
let endWatch = { at: -1, polls: 0 }
function unstickAtEnd () {
  const video = $('player')
  const hls = window.swarmgateHls
  if (!video || !hls || video.ended || video.paused) return
  if (video.currentTime !== endWatch.at) {
    endWatch = { at: video.currentTime, polls: 0 }
    return
  }
  if (++endWatch.polls < 2) return
  console.warn('live: playback stood still at ' + video.currentTime.toFixed(2) + ' s after the end; loading again')
  endWatch.polls = 0
  hls.stopLoad()
  hls.startLoad(video.currentTime)
}

async function start () {
  if (!/^[a-z2-7]{52}$/.test(stream)) {
    fail(`Unknown stream: “${stream}” is not a stream id (52 characters of a–z and 2–7).`)
    return
  }
  let st
  try {
    st = await status()
  } catch (err) {
    fail('Cannot reach the gateway: ' + err.message)
    return
  }
  if (!st) {
    fail(`Unknown stream: this gateway has no live stream ${stream}. Is the broadcaster running?`)
    return
  }
  if (!Hls.isSupported()) {
    fail('This browser cannot play HLS with Media Source Extensions; try the HLS playlist link in another player.')
    return
  }
  if (!window.crypto || !crypto.subtle) {
    fail('This page needs WebCrypto (a secure context: https or localhost).')
    return
  }
  const query = new URLSearchParams(location.search)
  const latency = Math.max(1, Math.min(30, parseInt(query.get('latency') || '5', 10) || 5))
  sg.p2p = query.get('p2p') !== '0'
  const config = boot.config || {}
  const HlsClass = sg.p2p ? HlsJsP2PEngine.injectMixin(Hls) : Hls
  const hls = new HlsClass({
    // Near the live edge: latency segments behind it, catching up when more than twice that.
    liveSyncDurationCount: latency,
    liveMaxLatencyDurationCount: Math.max(2 * latency, latency + 3),
    maxLiveSyncPlaybackRate: 1.1,
    backBufferLength: 30,
    maxBufferLength: 10,
    p2p: {
      core: {
        swarmId: stream,
        announceTrackers: [config.tracker_url],
        rtcConfig: { iceServers: config.ice_servers || [] },
        // Windows in seconds, for the broadcaster's default 1 s segments. A new segment comes
        // latency segments ahead of the playhead; it is fetched over HTTP at once only in the
        // last second before it plays (high demand, which also aborts a P2P download of it).
        // Until then a viewer fetches it over HTTP only by p2p-media-loader's random pick (about
        // one viewer in peers + 1) and the others get it from that viewer: the gap between the
        // two windows is what makes sharing possible (docs/bench.md, Live).
        highDemandTimeWindow: 1,
        httpDownloadTimeWindow: latency + 1,
        p2pDownloadTimeWindow: latency + 3,
        simultaneousHttpDownloads: 2,
        simultaneousP2PDownloads: 3,
        validateP2PSegment
      },
      onHlsJsCreated (h) {
        const e = h.p2pEngine
        e.addEventListener('onChunkDownloaded', (n, source) => {
          if (source === 'p2p') sg.stats.fromBrowsers += n
          else sg.stats.fromGateway += n
        })
        e.addEventListener('onChunkUploaded', (n) => { sg.stats.uploaded += n })
        e.addEventListener('onPeerConnect', () => { sg.stats.peers++ })
        e.addEventListener('onPeerClose', () => { sg.stats.peers = Math.max(0, sg.stats.peers - 1) })
        e.addEventListener('onTrackerError', (d) => console.warn('live: tracker:', d.error))
      }
    }
  })
  window.swarmgateHls = hls
  // A dropped tracker socket (its node died, the gateway restarted) is reopened within seconds,
  // not after p2p-media-loader's 10 s to 5 min: meanwhile the viewer meets no new peer.
  if (sg.p2p) rejoinHls(hls)
  if (!sg.p2p) hls.on(Hls.Events.FRAG_LOADED, (_, d) => { sg.stats.fromGateway += d.frag.stats.loaded })
  const video = $('player')
  hls.on(Hls.Events.ERROR, (_, d) => {
    console.warn('live: hls.js', d.fatal ? 'fatal' : '', d.type, d.details, d.reason || (d.error && d.error.message) || '')
    if (!d.fatal) return
    if (d.type === Hls.ErrorTypes.NETWORK_ERROR) {
      say('Network error (' + d.details + '); retrying…')
      setTimeout(() => hls.startLoad(), 2000)
    } else if (d.type === Hls.ErrorTypes.MEDIA_ERROR) {
      say('Media error (' + d.details + '); recovering…')
      hls.recoverMediaError()
    } else {
      fail('Playback failed: ' + d.details)
    }
  })
  video.addEventListener('playing', () => {
    if (sg.state !== 'error' && sg.state !== 'ended') {
      sg.state = 'playing'
      if (!/stalled|ended/.test(sg.message)) say('')
    }
  })
  video.addEventListener('waiting', () => { if (sg.state === 'playing') sg.state = 'loading' })
  hls.loadSource(base + '/index.m3u8')
  hls.attachMedia(video)
  video.play().catch(() => say('Press play to start.'))
  setInterval(() => {
    const d = hls.playingDate
    sg.stats.behindLive = d ? Math.max(0, (Date.now() - d.getTime()) / 1000) : -1
    render()
  }, STATS_EVERY_MS)
  setInterval(watchStatus, STATUS_EVERY_MS)
}

start().catch((err) => fail('The player failed to start: ' + err.message)).finally(render)

// Share and embed, and the plot: the watch page (not the embed) has them.
if ($('share')) {
  setupShare(() => {
    const watch = `${location.origin}/live/${stream}/`
    const iframe = `<iframe src="${location.origin}/live/${stream}/embed" width="640" height="360" style="border:0;max-width:100%" allow="autoplay; fullscreen; picture-in-picture" allowfullscreen></iframe>`
    const element = `<script src="${location.origin}/embed.js" async></script>\n<swarm-player live="${stream}"></swarm-player>`
    return { watch, iframe, element }
  })
}
if ($('plot')) {
  startPlot($('plot'), $('legend'), [
    { key: 'fromGateway', label: 'gateway', color: '#4e9af1' },
    { key: 'fromBrowsers', label: 'browsers', color: '#3ecf8e' }
  ], () => ({ fromGateway: sg.stats.fromGateway, fromBrowsers: sg.stats.fromBrowsers, up: sg.stats.uploaded }))
}
