// Checking segments that came from other browsers against the gateway's signed manifest: the
// live page and the HLS of remuxed or transcoded files (vod.js) share it. A manifest entry is
// live.Entry signed with Ed25519; the key is the stream id (52 characters of lowercase
// unpadded base32 of the public key). A segment from a peer is used only if its entry verifies
// and its SHA-256 and size match; otherwise the loader fetches it over HTTP.

const B32 = 'abcdefghijklmnopqrstuvwxyz234567'

// streamKey decodes a stream id into its 32-byte Ed25519 public key.
export function streamKey (id) {
  if (!/^[a-z2-7]{52}$/.test(id)) throw new Error('not a stream id: ' + id)
  const out = new Uint8Array(32)
  let bits = 0; let acc = 0; let n = 0
  for (const c of id) {
    acc = (acc << 5) | B32.indexOf(c)
    bits += 5
    if (bits >= 8) {
      bits -= 8
      if (n < 32) out[n++] = (acc >> bits) & 0xff
    }
    acc &= (1 << bits) - 1
  }
  if (n !== 32 || acc !== 0) throw new Error('not base32 of a 32-byte key: ' + id)
  return out
}

function fromHex (s, len) {
  if (typeof s !== 'string' || s.length !== 2 * len || !/^[0-9a-f]*$/.test(s)) throw new Error('bad hex')
  const out = new Uint8Array(len)
  for (let i = 0; i < len; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16)
  return out
}

function fromBase64 (s) {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0))
}

function toHex (buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('')
}

const CONTEXT = new TextEncoder().encode('swarmgate-live-v1/entry\x00')

// signingBytes is live.Entry.SigningBytes: the fixed 137-byte big-endian layout that is signed.
export function signingBytes (e, key) {
  const b = new Uint8Array(137)
  const v = new DataView(b.buffer)
  b.set(CONTEXT, 0)
  b.set(key, 24)
  v.setBigUint64(56, BigInt(e.seq))
  v.setUint8(64, e.kind === 'init' ? 1 : e.kind === 'media' ? 2 : 0)
  v.setBigInt64(65, BigInt(e.time_ms))
  v.setUint32(73, e.duration_us)
  v.setBigUint64(77, BigInt(e.size))
  b.set(fromHex(e.sha256, 32), 85)
  b.set(fromHex(e.infohash, 20), 117)
  return b
}

// segmentOf names the kind and seq of a segment URL: …/{seq}.m4s and …/{seq}.ts are media,
// …/init-{seq}.mp4 an initialization segment.
export function segmentOf (url, base = 'http://localhost/') {
  const path = new URL(url, base).pathname
  let m = /\/init-(\d+)\.mp4$/.exec(path)
  if (m) return 'init:' + m[1]
  m = /\/(\d+)\.(m4s|ts)$/.exec(path)
  return m ? 'media:' + m[1] : ''
}

// createVerifier checks segments of one stream against its manifest at manifestURL (fetched
// when an entry is missing, one fetch at a time). counts gets verified and rejected
// incremented as segments from peers are judged.
export function createVerifier ({ stream, manifestURL, counts, label = 'p2p' }) {
  let publicKey = null
  let keyBytes = null
  const entries = new Map() // "kind:seq" → Promise of the verified entry or null
  let manifestFetch = null

  async function cryptoKey () {
    if (!publicKey) {
      keyBytes = streamKey(stream)
      publicKey = await crypto.subtle.importKey('raw', keyBytes, { name: 'Ed25519' }, false, ['verify'])
    }
    return publicKey
  }

  // verifyEntry checks one manifest entry's signature with the stream id.
  async function verifyEntry (e) {
    try {
      const key = await cryptoKey()
      if (e.stream !== stream) return false
      return await crypto.subtle.verify({ name: 'Ed25519' }, key, fromBase64(e.sig), signingBytes(e, keyBytes))
    } catch (err) {
      console.warn(label + ': entry', e && e.seq, 'does not verify:', err)
      return false
    }
  }

  function refreshManifest () {
    if (!manifestFetch) {
      manifestFetch = (async () => {
        try {
          const res = await fetch(manifestURL, { cache: 'no-store' })
          if (!res.ok) throw new Error('manifest: HTTP ' + res.status)
          const m = await res.json()
          for (const e of m.entries || []) {
            const k = e.kind + ':' + e.seq
            if (!entries.has(k)) entries.set(k, verifyEntry(e).then((ok) => (ok ? e : null)))
          }
        } catch (err) {
          console.warn(label + ':', err)
        } finally {
          manifestFetch = null
        }
      })()
    }
    return manifestFetch
  }

  async function entryFor (k) {
    if (!entries.has(k)) await refreshManifest()
    return entries.has(k) ? entries.get(k) : null
  }

  // checkSegment says whether data are the bytes the stream's signed entry for url describes.
  async function checkSegment (url, data) {
    const k = segmentOf(url, location.href)
    if (!k) return false
    const e = await entryFor(k)
    if (!e || data.byteLength !== e.size) return false
    return toHex(await crypto.subtle.digest('SHA-256', data)) === e.sha256
  }

  // validateP2PSegment is p2p-media-loader's hook for a segment that came from a peer: false
  // makes the loader fetch it over HTTP instead.
  async function validateP2PSegment (url, byteRange, data) {
    let ok = false
    try {
      ok = byteRange === undefined && await checkSegment(url, data)
    } catch (err) {
      console.warn(label + ': checking', url, err)
    }
    if (ok) {
      counts.verified++
    } else {
      counts.rejected++
      console.warn(label + ': rejected a segment from a peer:', url)
    }
    return ok
  }

  return { verifyEntry, refreshManifest, checkSegment, validateP2PSegment }
}
