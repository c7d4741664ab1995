// The watch page: the player, a file picker, live swarm stats with a 60 s plot, share and embed.
import { sg, start, isPlayable } from './player.js'
import { formatBytes, formatRate } from './format.js'
import { browserSide, bufferedAhead, gatewaySide } from './stats.js'

const $ = id => document.getElementById(id)
const video = $('player')

start({ video, messageEl: $('message'), hooks: { onTorrent } })

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
  $('stream-link').href = file.stream_url
  $('playlist-link').href = `/playlist/${torrent.infohash}.m3u`
  $('torrent-link').href = torrent.metainfo_url
  $('magnet-link').href = torrent.magnet
  $('links').hidden = false
}

// ---------------------------------------------------------------------------------------------
// Share and embed.

function links () {
  const q = sg.file >= 0 ? `?file=${sg.file}` : ''
  const watch = `${location.origin}/watch/${sg.infohash}${q}`
  const embed = `${location.origin}/embed/${sg.infohash}${q}`
  const iframe = `<iframe src="${embed}" width="640" height="360" style="border:0;max-width:100%" allow="autoplay; fullscreen; picture-in-picture" allowfullscreen></iframe>`
  const element = `<script src="${location.origin}/embed.js" async></script>\n<swarm-player infohash="${sg.infohash}"${sg.file >= 0 ? ` file="${sg.file}"` : ''}></swarm-player>`
  return { watch, iframe, element }
}

async function copy (text) {
  try {
    await navigator.clipboard.writeText(text)
    return true
  } catch {
    // No clipboard API (insecure context, or denied): the old way.
    const ta = Object.assign(document.createElement('textarea'), { value: text })
    ta.setAttribute('readonly', '')
    ta.style.position = 'fixed'
    ta.style.opacity = '0'
    document.body.append(ta)
    ta.select()
    let ok = false
    try {
      ok = document.execCommand('copy')
    } catch {}
    ta.remove()
    return ok
  }
}

function show (text, note) {
  $('code').value = text
  $('codebox').hidden = false
  copy(text).then(ok => {
    $('copied').textContent = ok ? `${note} copied` : 'Copy it from the box below'
    setTimeout(() => { $('copied').textContent = '' }, 3000)
  })
}

$('share').addEventListener('click', () => show(links().watch, 'Link'))
$('embed').addEventListener('click', () => {
  const l = links()
  show(`${l.iframe}\n\n<!-- or -->\n${l.element}`, 'Embed code')
})

// ---------------------------------------------------------------------------------------------
// Stats panel and plot.

const SERIES = [
  { key: 'fromGateway', label: 'gateway', color: '#4e9af1' },
  { key: 'fromBrowsers', label: 'browsers', color: '#3ecf8e' },
  { key: 'fromWebseed', label: 'webseed', color: '#f5a623' }
]
const history = [] // per second: bytes/s from each source, and upload
let last = null

function renderStats () {
  const s = sg.stats
  const b = browserSide(s, sg.mode)
  $('s-mode').textContent = b.mode
  $('s-down').textContent = sg.mode === 'webtorrent' ? formatRate(s.downloadSpeed) : '–'
  $('s-up').textContent = sg.mode === 'webtorrent' ? formatRate(s.uploadSpeed) : '–'
  $('s-from-gateway').textContent = b.fromGateway
  $('s-from-browsers').textContent = b.fromBrowsers
  $('s-uploaded').textContent = b.uploaded
  $('s-peers').textContent = b.peers
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

function sample () {
  const s = sg.stats
  if (last) {
    history.push({
      fromGateway: Math.max(0, s.fromGateway - last.fromGateway),
      fromBrowsers: Math.max(0, s.fromBrowsers - last.fromBrowsers),
      fromWebseed: Math.max(0, s.fromWebseed - last.fromWebseed),
      up: Math.max(0, s.uploaded - last.uploaded)
    })
    if (history.length > 60) history.shift()
  }
  last = { ...s }
  plot()
}

function plot () {
  const canvas = $('plot')
  const dpr = window.devicePixelRatio || 1
  const w = canvas.clientWidth
  const h = canvas.clientHeight
  if (canvas.width !== Math.round(w * dpr)) canvas.width = Math.round(w * dpr)
  if (canvas.height !== Math.round(h * dpr)) canvas.height = Math.round(h * dpr)
  const ctx = canvas.getContext('2d')
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0)
  ctx.clearRect(0, 0, w, h)
  const max = Math.max(1, ...history.map(p => Math.max(p.fromGateway + p.fromBrowsers + p.fromWebseed, p.up)))
  const x = i => w - (history.length - 1 - i) * (w / 59)
  const y = v => h - 14 - (v / max) * (h - 20)
  // Stacked areas: gateway at the bottom, then browsers, then webseed.
  const base = history.map(() => 0)
  for (const s of SERIES) {
    if (history.length < 2) break
    const top = history.map((p, i) => base[i] + p[s.key])
    ctx.beginPath()
    history.forEach((_, i) => ctx.lineTo(x(i), y(top[i])))
    for (let i = history.length - 1; i >= 0; i--) ctx.lineTo(x(i), y(base[i]))
    ctx.closePath()
    ctx.fillStyle = s.color + 'aa'
    ctx.fill()
    top.forEach((v, i) => { base[i] = v })
  }
  if (history.length >= 2) {
    ctx.beginPath()
    history.forEach((p, i) => ctx.lineTo(x(i), y(p.up)))
    ctx.strokeStyle = '#e0e0e0'
    ctx.setLineDash([4, 3])
    ctx.stroke()
    ctx.setLineDash([])
  }
  ctx.fillStyle = '#999'
  ctx.font = '11px system-ui, sans-serif'
  ctx.fillText(`peak ${formatRate(max)} · last 60 s`, 4, h - 2)
}

$('legend').replaceChildren(...SERIES.map(s => {
  const span = document.createElement('span')
  span.innerHTML = `<i style="background:${s.color}"></i>${s.label}`
  return span
}), Object.assign(document.createElement('span'), { innerHTML: '<i class="up"></i>upload' }))

setInterval(renderStats, 500)
setInterval(sample, 1000)
renderStats()
plot()
