// HLS of a file the browser cannot play as it is: the gateway remuxes or transcodes it
// (/hls/{ih}/{file}/{variant}/, package transcode) and browsers share the segments through
// p2p-media-loader over the gateway's tracker, as the live page does. Two ffmpeg runs need not
// make the same bytes, so the gateway is the authority: a segment from a peer is used only if it
// matches the gateway's signed entry for it (verify.js); otherwise it is fetched over HTTP.
//
// Where the browser has no Media Source Extensions but plays HLS itself (iPhone Safari), the
// video element gets the playlist: it plays from the gateway alone.

import { createVerifier } from './verify.js'
import { swarmStats } from './playback.js'
import { rejoinHls } from './rejoin.js'

const VENDOR = '/static/vendor/live.min.js'
const STATS_EVERY_MS = 250

// HLSRefused is the gateway's "no" to a variant (policy, capacity, a file it cannot cut): the
// page says why and plays the file as it is.
export class HLSRefused extends Error {}

// variantPath is where the gateway serves the plan's variant of file.
export function variantPath (infohash, file, plan) {
  const variant = plan.how + (plan.audio != null ? '-a' + plan.audio : '')
  return { variant, base: `/hls/${infohash}/${file.index}/${variant}/` }
}

// playHLS plays plan (how: remux|transcode, hls: mse|native) of file in video, updating sg.
// It resolves once playback is set up; HLSRefused when the gateway will not make the variant.
export async function playHLS ({ sg, video, infohash, file, plan, config, p2p = true, onFatal }) {
  const { variant, base } = variantPath(infohash, file, plan)
  // The manifest first: the gateway's answer (it may refuse), and the variant's stream id, which
  // names its swarm and is the key its segments are signed with.
  const res = await fetch(base + 'manifest.json', { cache: 'no-store' })
  let body = null
  try { body = await res.json() } catch {}
  if (!res.ok) throw new HLSRefused(body?.error || `HTTP ${res.status}`)
  const stream = body.stream
  sg.hls = { variant, stream, playlist: base + 'index.m3u8', verified: 0, rejected: 0 }

  if (plan.hls === 'native') {
    sg.mode = 'hls-native'
    video.src = sg.hls.playlist
    video.play().catch(() => {})
    return
  }

  const { Hls, HlsJsP2PEngine } = await import(VENDOR)
  if (!Hls.isSupported()) throw new HLSRefused('this browser cannot play HLS with Media Source Extensions')
  sg.mode = 'hls'
  const from = { gateway: 0, browsers: 0, webseed: 0, other: 0 }
  const peers = { gateway: 0, browsers: 0, webseed: 0, other: 0 }
  let uploaded = 0
  const verifier = createVerifier({ stream, manifestURL: base + 'manifest.json', counts: sg.hls, label: 'hls' })
  const HlsClass = p2p ? HlsJsP2PEngine.injectMixin(Hls) : Hls
  const hls = new HlsClass({
    maxBufferLength: 30,
    backBufferLength: 60,
    p2p: {
      core: {
        swarmId: stream,
        announceTrackers: [config.tracker_url],
        // The gateway's ICE servers only: never p2p-media-loader's public STUN defaults.
        rtcConfig: { iceServers: config.ice_servers || [] },
        // Seconds ahead of the playhead. The next 8 s come over HTTP at once if no peer has
        // them (a viewer never waits on P2P for what plays next); further ahead a segment
        // comes from a peer that has it, and over HTTP only by p2p-media-loader's random pick.
        highDemandTimeWindow: 4,
        httpDownloadTimeWindow: 40,
        p2pDownloadTimeWindow: 90,
        simultaneousHttpDownloads: 2,
        simultaneousP2PDownloads: 3,
        validateP2PSegment: verifier.validateP2PSegment
      },
      onHlsJsCreated (h) {
        const e = h.p2pEngine
        e.addEventListener('onChunkDownloaded', (n, source) => {
          if (source === 'p2p') from.browsers += n
          else from.gateway += n
        })
        e.addEventListener('onChunkUploaded', (n) => { uploaded += n })
        e.addEventListener('onPeerConnect', () => { peers.browsers++ })
        e.addEventListener('onPeerClose', () => { peers.browsers = Math.max(0, peers.browsers - 1) })
        e.addEventListener('onTrackerError', (d) => console.warn('hls: tracker:', d.error))
      }
    }
  })
  window.swarmgateHls = hls
  window.swarmgateVerifier = verifier
  if (p2p) rejoinHls(hls) // a dropped tracker socket is reopened within seconds
  if (!p2p) hls.on(Hls.Events.FRAG_LOADED, (_, d) => { from.gateway += d.frag.stats.loaded })
  let recoveries = 0
  hls.on(Hls.Events.ERROR, (_, d) => {
    console.warn('hls: hls.js', d.fatal ? 'fatal' : '', d.type, d.details, d.response?.code || '', d.reason || (d.error && d.error.message) || '')
    if (!d.fatal) return
    if (d.type === Hls.ErrorTypes.NETWORK_ERROR && recoveries++ < 10) {
      // A segment the gateway could not make yet (its transcoders busy: 503): try again.
      setTimeout(() => hls.startLoad(), 2000)
    } else if (d.type === Hls.ErrorTypes.MEDIA_ERROR && recoveries++ < 10) {
      hls.recoverMediaError()
    } else {
      onFatal?.(`Playback failed (${d.details})`)
    }
  })
  hls.loadSource(sg.hls.playlist)
  hls.attachMedia(video)
  video.play().catch(() => {})
  window.addEventListener('pagehide', () => hls.destroy(), { once: true })
  setInterval(() => {
    sg.stats = { ...swarmStats({ peers, from, uploaded }), verified: sg.hls.verified, rejected: sg.hls.rejected }
  }, STATS_EVERY_MS)
}
