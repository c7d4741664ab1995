// The home page: add a torrent (magnet, infohash or .torrent file), then watch it; the gateway's
// torrents, refreshed.
import { formatBytes, formatRate } from './format.js'

const $ = id => document.getElementById(id)
const list = $('torrents')
const errorBox = $('error')

async function refresh () {
  let torrents
  try {
    const res = await fetch('/api/torrents', { cache: 'no-store' })
    torrents = await res.json()
    if (!res.ok) throw new Error(torrents.error)
  } catch (err) {
    list.replaceChildren(Object.assign(document.createElement('li'), { textContent: `Cannot list torrents: ${err.message}` }))
    return
  }
  list.replaceChildren()
  if (torrents.length === 0) {
    list.append(Object.assign(document.createElement('li'), { textContent: 'None yet.' }))
  }
  for (const t of torrents) {
    const li = document.createElement('li')
    const a = Object.assign(document.createElement('a'), { href: '/watch/' + t.infohash, textContent: t.name || t.infohash })
    const meta = Object.assign(document.createElement('div'), {
      className: 'meta',
      textContent: `${t.state} · ${t.length ? formatBytes(t.length) : '?'} · ${t.peers.native} native / ${t.peers.webrtc} WebRTC peers · ↓ ${formatRate(t.rates.download)} ↑ ${formatRate(t.rates.upload)}`
    })
    const progress = Object.assign(document.createElement('progress'), { max: 1, value: t.progress })
    progress.title = `${(t.progress * 100).toFixed(1)} %`
    const left = document.createElement('div')
    left.append(a, meta)
    li.append(left, progress)
    list.append(li)
  }
}

async function add (body, contentType) {
  errorBox.textContent = ''
  try {
    const res = await fetch('/api/torrents', { method: 'POST', headers: { 'Content-Type': contentType }, body })
    const answer = await res.json()
    if (!res.ok) throw new Error(answer.error || `HTTP ${res.status}`)
    location.href = '/watch/' + answer.infohash
  } catch (err) {
    errorBox.textContent = err.message
  }
}

$('add').addEventListener('submit', ev => {
  ev.preventDefault()
  const source = $('source').value.trim()
  if (!source) {
    errorBox.textContent = 'Paste a magnet link or an infohash first.'
    return
  }
  const body = source.startsWith('magnet:') ? { magnet: source } : { infohash: source }
  add(JSON.stringify(body), 'application/json')
})

function addFile (file) {
  if (file) add(file, 'application/x-bittorrent')
}

$('choose').addEventListener('click', ev => {
  ev.preventDefault()
  $('file').click()
})
$('file').addEventListener('change', () => addFile($('file').files[0]))
const drop = $('drop')
for (const name of ['dragenter', 'dragover']) {
  document.addEventListener(name, ev => {
    ev.preventDefault()
    drop.classList.add('over')
  })
}
document.addEventListener('dragleave', ev => {
  if (!ev.relatedTarget) drop.classList.remove('over')
})
document.addEventListener('drop', ev => {
  ev.preventDefault()
  drop.classList.remove('over')
  addFile(ev.dataTransfer.files[0])
})

refresh()
setInterval(refresh, 3000)
