// Unit tests of static/playplan.js: how a browser plays a file, from the probe and its answers.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { browserCaps, containerMIME, embeddedSubtitles, playPlan } from '../static/playplan.js'

const file = (container, video, audio, path = 'f') => ({
  path,
  media: { state: 'done', info: { container, video: video ? [video] : [], audio, subtitles: [] } }
})
const h264 = { index: 0, codec: 'h264', codec_string: 'avc1.640028' }
const hevc = { index: 0, codec: 'hevc', codec_string: 'hvc1.1.6.L120.B0' }
const xvid = { index: 0, codec: 'mpeg4', codec_string: 'mp4v.20.9' }
const aac = { index: 1, codec: 'aac', codec_string: 'mp4a.40.2' }
const ac3 = { index: 1, codec: 'ac3', codec_string: 'ac-3' }
const eac3 = { index: 2, codec: 'eac3', codec_string: 'ec-3', default: true }
const mp3 = { index: 1, codec: 'mp3', codec_string: 'mp4a.6b' }

// A browser like Google Chrome: H.264 and AAC, in MP4 and WebM; MSE for the same; no AC-3, no HEVC.
const chrome = {
  canPlay: t => /^video\/(mp4|webm)/.test(t) && !/hvc1|ac-3|ec-3|mp4v/.test(t) ? 'probably' : '',
  mse: t => !/hvc1|ac-3|ec-3|mp4v/.test(t)
}
// iPhone Safari: no MSE; plays HLS natively with H.264, HEVC, AAC, AC-3.
const iphone = {
  canPlay: t => t === 'application/vnd.apple.mpegurl' ? 'maybe' : (/^(video|audio)\/mp4/.test(t) && !/mp4v/.test(t) ? 'maybe' : ''),
  mse: null
}

test('containerMIME', () => {
  assert.equal(containerMIME('matroska,webm', 'a.mkv'), 'video/x-matroska')
  assert.equal(containerMIME('matroska,webm', 'a.webm'), 'video/webm')
  assert.equal(containerMIME('mov,mp4,m4a,3gp,3g2,mj2'), 'video/mp4')
  assert.equal(containerMIME('avi'), 'video/x-msvideo')
})

test('what the browser plays as it is plays direct, over P2P pieces', () => {
  const p = playPlan(file('mov,mp4,m4a,3gp,3g2,mj2', h264, [aac]), chrome)
  assert.equal(p.how, 'direct')
  assert.equal(p.audio, 1)
  assert.equal(playPlan({ path: 'x.mp4' }, chrome).how, 'direct', 'not probed yet: as today')
})

test('MKV H.264 + AC-3 in Chrome: remux, the audio to AAC', () => {
  const p = playPlan(file('matroska,webm', h264, [ac3]), chrome)
  assert.deepEqual([p.how, p.hls], ['remux', 'mse'])
  assert.match(p.why, /h264 video copied; ac3 audio converted to AAC/)
})

test('HEVC in Chrome without hardware, XviD anywhere: transcode', () => {
  assert.equal(playPlan(file('matroska,webm', hevc, [eac3]), chrome).how, 'transcode')
  const p = playPlan(file('avi', xvid, [mp3]), chrome)
  assert.equal(p.how, 'transcode')
  assert.match(p.why, /mpeg4 video is not H.264/)
})

test('iPhone: no MSE, so HLS natively; H.264 remuxed, HEVC and XviD transcoded (HLS here is MPEG-TS)', () => {
  const p = playPlan(file('matroska,webm', h264, [ac3]), iphone)
  assert.deepEqual([p.how, p.hls], ['remux', 'native'])
  assert.deepEqual([playPlan(file('matroska,webm', hevc, [ac3]), iphone).how, playPlan(file('matroska,webm', hevc, [ac3]), iphone).hls], ['transcode', 'native'])
  assert.equal(playPlan(file('avi', xvid, [mp3]), iphone).how, 'transcode')
})

test('what the gateway makes bounds the plan', () => {
  const mkv = file('matroska,webm', h264, [ac3])
  const off = playPlan(mkv, { ...chrome, transcode: 'off' })
  assert.equal(off.how, 'direct')
  assert.match(off.why, /needs a remux .* this gateway makes no HLS/)
  assert.equal(playPlan(mkv, { ...chrome, transcode: 'remux' }).how, 'remux')
  const avi = playPlan(file('avi', xvid, [mp3]), { ...chrome, transcode: 'remux' })
  assert.equal(avi.how, 'direct')
  assert.match(avi.why, /only remuxes/)
})

test('browserCaps: the ?caps= override for tests', () => {
  const real = { canPlayType: t => /mp4|x-matroska/.test(t) ? 'probably' : '', MediaSource: { isTypeSupported: t => !/hvc1/.test(t) } }
  const as = caps => browserCaps(real, caps)
  assert.equal(as('').canPlay('video/x-matroska; codecs="avc1.640028, ac-3"'), 'probably')
  assert.equal(as('-ac-3').canPlay('video/x-matroska; codecs="avc1.640028, ac-3"'), '')
  assert.equal(as('-ac-3').mse('audio/mp4; codecs="ac-3"'), false)
  assert.equal(as('-ac-3').mse('video/mp4; codecs="avc1.640028"'), true)
  assert.equal(as('no-mse').mse, null)
  assert.equal(as('no-mse,hls').canPlay('application/vnd.apple.mpegurl'), 'maybe')
  assert.equal(browserCaps({ ...real, MediaSource: undefined }).mse, null)
  const plan = playPlan(file('matroska,webm', h264, [ac3]), as('-ac-3'))
  assert.deepEqual([plan.how, plan.hls], ['remux', 'mse'])
  const iphoneLike = playPlan(file('matroska,webm', h264, [ac3]), as('no-mse,hls,-x-matroska'))
  assert.deepEqual([iphoneLike.how, iphoneLike.hls], ['remux', 'native'])
})

test('a second audio track chosen: through HLS, even when the file would play direct', () => {
  const f = file('mov,mp4,m4a,3gp,3g2,mj2', h264, [aac, { ...aac, index: 2, language: 'fra' }])
  assert.equal(playPlan(f, chrome).how, 'direct', 'the first track plays as it is')
  const p = playPlan(f, { ...chrome, audioTrack: 2 })
  assert.deepEqual([p.how, p.audio], ['remux', 2])
  assert.equal(playPlan(file('matroska,webm', h264, [ac3, eac3]), chrome).audio, 2, 'the default track')
})

test('no HLS at all: the file as it is, with the reason', () => {
  const p = playPlan(file('avi', xvid, [mp3]), { canPlay: () => '', mse: null })
  assert.equal(p.how, 'direct')
  assert.match(p.why, /no way to play HLS/)
})

test('embeddedSubtitles: text tracks only, the viewer language on', () => {
  const info = {
    subtitles: [
      { index: 2, codec: 'subrip', text: true, language: 'eng', title: 'English' },
      { index: 3, codec: 'hdmv_pgs_subtitle', text: false, language: 'fra' },
      { index: 4, codec: 'ass', text: true, language: 'fre' }
    ]
  }
  const fr = embeddedSubtitles(info, 'fr-FR')
  assert.deepEqual(fr.map(t => [t.index, t.srclang, t.on]), [[2, 'en', false], [4, 'fr', true]])
  assert.equal(fr[0].label, 'English · eng')
  assert.deepEqual(embeddedSubtitles(info, 'de').map(t => t.on), [false, false])
  assert.deepEqual(embeddedSubtitles({ subtitles: [{ index: 5, text: true, forced: true }] }, 'de').map(t => [t.on, t.label]), [[true, 'track 5']])
  assert.deepEqual(embeddedSubtitles(null), [])
})
