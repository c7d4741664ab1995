// The watch page: the player, a file picker, live swarm stats with a 60 s plot, share and embed.
import { sg, start, isPlayable } from './player.js'
import { formatBytes, formatRate } from './format.js'
import { browserSide, bufferedAhead, gatewaySide } from './stats.js'
import { setupShare } from './share.js'
import { startPlot } from './plot.js'

const $ = id => document.getElementById(id)

start({ video: $('player'), messageEl: $('message'), hooks: { onTorrent } })

function onTorrent (torrent, file) {
  $('title').textContent = torrent.name || torrent.infohash
  document.title = `${torrent.name || torrent.infohash} — swarmgate`
  const playable = torrent.files.filter(isPlayable)
  if (playable.length > 1) {
    const picker = $('file-picker')
    for (const f of playable) {
      picker.append(new Option(`${f.path} (${formatBytes(f.length)})`, String(f.index), false, f.index === file.index))
    }
    picker.addEventListener('change', () => {
      const url = new URL(location.href)
      url.searchParams.set('file', picker.value)
      location.href = url.href
    })
    $('picker-label').hidden = false
  }
  // How this browser plays the file, from what it holds (the gateway's probe): the player chose.
  showPlan()
  const audio = file.media?.state === 'done' ? file.media.info.audio : []
  if (audio.length > 1) {
    const picker = $('audio-picker')
    for (const a of audio) {
      const label = [a.title, a.language, a.codec, a.channels ? `${a.channels} ch` : ''].filter(Boolean).join(' · ')
      picker.append(new Option(label || `track ${a.index}`, String(a.index), false, a.index === sg.plan.audio))
    }
    picker.addEventListener('change', () => {
      const url = new URL(location.href)
      url.searchParams.set('audio', picker.value)
      location.href = url.href
    })
    $('audio-label').hidden = false
  }
  $('stream-link').href = file.stream_url
  $('playlist-link').href = `/playlist/${torrent.infohash}.m3u`
  $('torrent-link').href = torrent.metainfo_url
  $('magnet-link').href = torrent.magnet
  $('links').hidden = false
}

// showPlan shows how the file plays here and why (the player may change it: the gateway can
// refuse HLS).
function showPlan () {
  if (!sg.plan) return
  $('s-plan').textContent = sg.plan.how + (sg.plan.hls ? ` (HLS${sg.plan.hls === 'native' ? ', the browser\'s own' : ''})` : '')
  $('s-plan').title = sg.plan.why
  $('s-plan-why').textContent = sg.plan.why
}

// ---------------------------------------------------------------------------------------------
// Share and embed.

setupShare(() => {
  const q = sg.file >= 0 ? `?file=${sg.file}` : ''
  const watch = `${location.origin}/watch/${sg.infohash}${q}`
  const embed = `${location.origin}/embed/${sg.infohash}${q}`
  const iframe = `<iframe src="${embed}" width="640" height="360" style="border:0;max-width:100%" allow="autoplay; fullscreen; picture-in-picture" allowfullscreen></iframe>`
  const element = `<script src="${location.origin}/embed.js" async></script>\n<swarm-player infohash="${sg.infohash}"${sg.file >= 0 ? ` file="${sg.file}"` : ''}></swarm-player>`
  return { watch, iframe, element }
})

// ---------------------------------------------------------------------------------------------
// Stats panel and plot.

function renderStats () {
  showPlan()
  const s = sg.stats
  const b = browserSide(s, sg.mode)
  $('s-mode').textContent = b.mode
  $('s-down').textContent = sg.mode === 'webtorrent' ? formatRate(s.downloadSpeed) : '–'
  $('s-up').textContent = sg.mode === 'webtorrent' ? formatRate(s.uploadSpeed) : '–'
  $('s-from-gateway').textContent = b.fromGateway
  $('s-from-browsers').textContent = b.fromBrowsers
  $('s-uploaded').textContent = b.uploaded
  $('s-peers').textContent = b.peers
  // The video that has the picture now (the player hands it from one to another: see player.js).
  const video = $('player')
  const ranges = []
  for (let i = 0; i < video.buffered.length; i++) ranges.push([video.buffered.start(i), video.buffered.end(i)])
  const ahead = bufferedAhead(ranges, video.currentTime)
  $('s-buffer-bar').value = Math.min(ahead, 30)
  $('s-buffer').textContent = `${Math.round(ahead)} s`
}

// The gateway's side, from its API every 2 s while the page is visible.
async function refreshGateway () {
  if (document.hidden || !sg.infohash) return
  let t
  try {
    const res = await fetch(`/api/torrents/${sg.infohash}`, { cache: 'no-store' })
    if (res.ok) t = await res.json()
  } catch {}
  const g = gatewaySide(t)
  $('g-peers').textContent = g.peers
  $('g-down').textContent = g.download
  $('g-held').textContent = g.held
}
setInterval(refreshGateway, 2000)

startPlot($('plot'), $('legend'), [
  { key: 'fromGateway', label: 'gateway', color: '#4e9af1' },
  { key: 'fromBrowsers', label: 'browsers', color: '#3ecf8e' },
  { key: 'fromWebseed', label: 'webseed', color: '#f5a623' }
], () => ({ fromGateway: sg.stats.fromGateway, fromBrowsers: sg.stats.fromBrowsers, fromWebseed: sg.stats.fromWebseed, up: sg.stats.uploaded }))

setInterval(renderStats, 500)
renderStats()
// Hidden in the page's HTML: without the scripts it says nothing, and the first layout (which the
// first frame waits on) is smaller without it.
$('stats').hidden = false
