// The home page: add a torrent (magnet, infohash, .torrent URL or file), then watch it; the
// gateway's torrents and live streams, refreshed; delete a torrent. POST and DELETE carry the
// admin token when the gateway wants one: asked for on its first 401, kept in this browser.
import { formatBytes, formatRate } from './format.js'
import { addRequestFor, liveLine } from './add.js'
import { rejoinTorrent } from './rejoin.js'

const $ = id => document.getElementById(id)
const list = $('torrents')
const liveList = $('live')
const errorBox = $('error')
const TOKEN_KEY = 'swarmgate-admin-token'

const el = (tag, props = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props)
  e.append(...children)
  return e
}

async function getJSON (path) {
  const res = await fetch(path, { cache: 'no-store' })
  const body = await res.json()
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`)
  return body
}

// authorized runs a POST or DELETE, with the stored admin token if any; on 401 it asks for the
// token (the form below the box) and runs again once one is given.
async function authorized (path, init) {
  const token = localStorage.getItem(TOKEN_KEY)
  const headers = { ...(init.headers || {}) }
  if (token) headers.Authorization = `Bearer ${token}`
  const res = await fetch(path, { ...init, headers })
  if (res.status === 401) {
    if (token) localStorage.removeItem(TOKEN_KEY)
    await askToken(token ? 'That admin token was refused. Enter the right one:' : 'This gateway needs its admin token for that:')
    return authorized(path, init)
  }
  return res
}

function askToken (question) {
  return new Promise(resolve => {
    const form = $('token-form')
    $('token-question').textContent = question
    form.hidden = false
    $('token').focus()
    form.onsubmit = ev => {
      ev.preventDefault()
      const t = $('token').value.trim()
      if (!t) return
      localStorage.setItem(TOKEN_KEY, t)
      $('token').value = ''
      form.hidden = true
      resolve()
    }
  })
}

async function refresh () {
  let torrents
  try {
    torrents = await getJSON('/api/torrents')
  } catch (err) {
    list.replaceChildren(el('li', { textContent: `Cannot list torrents: ${err.message}` }))
    return
  }
  list.replaceChildren()
  if (torrents.length === 0) list.append(el('li', { textContent: 'None yet.' }))
  for (const t of torrents) {
    const name = t.name || t.infohash
    const meta = el('div', {
      className: 'meta',
      textContent: `${t.state} · ${t.length ? formatBytes(t.length) : '?'} · ${t.peers.native} native / ${t.peers.webrtc} WebRTC peers · ↓ ${formatRate(t.rates.download)} ↑ ${formatRate(t.rates.upload)}`
    })
    const progress = el('progress', { max: 1, value: t.progress, title: `${(t.progress * 100).toFixed(1)} % here` })
    const del = el('button', { className: 'delete', type: 'button', textContent: 'Delete', title: `Remove ${name} from the gateway` })
    del.addEventListener('click', () => remove(t, name))
    list.append(el('li', {}, el('div', {}, el('a', { href: '/watch/' + t.infohash, textContent: name }), meta), progress, del))
  }
}

async function refreshLive () {
  let streams
  try {
    streams = await getJSON('/api/live')
  } catch {
    streams = []
  }
  $('live-section').hidden = streams.length === 0
  liveList.replaceChildren()
  for (const st of streams) {
    const a = el('a', { href: `/live/${st.stream}/`, textContent: `Live ${st.stream.slice(0, 12)}…` })
    liveList.append(el('li', {}, el('div', {}, a, el('div', { className: 'meta', textContent: liveLine(st, formatRate) }))))
  }
}

async function remove (t, name) {
  if (!confirm(`Remove “${name}” from the gateway? Data it downloaded is deleted too; files seeded in place stay.`)) return
  errorBox.textContent = ''
  try {
    let res = await authorized(`/api/torrents/${t.infohash}?data=1`, { method: 'DELETE' })
    if (res.status === 409) res = await authorized(`/api/torrents/${t.infohash}`, { method: 'DELETE' }) // seeded in place
    if (!res.ok && res.status !== 404) throw new Error((await res.json()).error || `HTTP ${res.status}`)
  } catch (err) {
    errorBox.textContent = `Delete failed: ${err.message}`
  }
  refresh()
}

async function add (body, contentType) {
  errorBox.textContent = ''
  try {
    const res = await authorized('/api/torrents', { method: 'POST', headers: { 'Content-Type': contentType }, body })
    const answer = await res.json()
    if (!res.ok) throw new Error(answer.error || `HTTP ${res.status}`)
    location.href = '/watch/' + answer.infohash
  } catch (err) {
    errorBox.textContent = err.message
  }
}

$('add').addEventListener('submit', ev => {
  ev.preventDefault()
  const req = addRequestFor($('source').value)
  if (req.error) {
    errorBox.textContent = req.error
    return
  }
  add(JSON.stringify(req.body), 'application/json')
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

// Sharing a file from this computer, as instant.io does: webtorrent in this page seeds it into the
// gateway's tracker, the gateway is asked to fetch it whole (it offers to this page, which it
// finds in its tracker's swarm), and once it holds every piece the page may close: others watch
// from the gateway and from each other.
$('share-choose').addEventListener('click', ev => {
  ev.preventDefault()
  $('share-file').click()
})
$('share-file').addEventListener('change', () => {
  const file = $('share-file').files[0]
  if (file) shareFile(file).catch(err => { errorBox.textContent = `Sharing failed: ${err.message}` })
})

async function shareFile (file) {
  errorBox.textContent = ''
  $('sharing').hidden = false
  $('share-status').textContent = `Hashing ${file.name}…`
  const [{ default: WebTorrent }, config] = await Promise.all([import('/static/vendor/webtorrent.min.js'), getJSON('/api/config')])
  // The gateway's ICE servers only (maybe none): never webtorrent's default public STUN servers.
  const client = new WebTorrent({ tracker: { rtcConfig: { iceServers: config.ice_servers || [] } } })
  window.swarmgateShare = client // kept alive with the page; tests look at it
  const torrent = await new Promise((resolve, reject) => {
    client.on('error', reject)
    client.seed(file, { announce: [config.tracker_url] }, resolve)
  })
  // The gateway finds this page in its tracker's swarm: a dropped socket is reopened within
  // seconds (rejoin.js), not webtorrent's 10 s to 5 min.
  rejoinTorrent(torrent)
  $('share-status').textContent = `Seeding ${file.name} (${formatBytes(file.size)}); the gateway is fetching it…`
  const res = await authorized('/api/torrents', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ magnet: torrent.magnetURI, fetch_all: true })
  })
  const added = await res.json()
  if (!res.ok) throw new Error(added.error || `HTTP ${res.status}`)
  $('share-watch').href = '/watch/' + added.infohash
  for (;;) {
    const t = await getJSON('/api/torrents/' + added.infohash)
    $('share-progress').value = t.progress
    $('share-status').textContent = `Seeding ${file.name}: the gateway holds ${(t.progress * 100).toFixed(0)} %`
    if (t.state === 'seeding') break
    await new Promise(resolve => setTimeout(resolve, 1000))
  }
  $('share-done').hidden = false
}

// /?add=<infohash> (the unknown-torrent page's link) fills the box.
const wanted = new URLSearchParams(location.search).get('add')
if (wanted) $('source').value = wanted

refresh()
refreshLive()
setInterval(refresh, 3000)
setInterval(refreshLive, 5000)
