// How this browser plays a file, decided from what the file holds (the gateway's probe,
// files[].media.info) and what the browser says it decodes, as Jellyfin decides with device
// profiles. Pure, for node's test runner: the browser's answers come in as functions.
//
//   direct     the torrent's bytes as they are (webtorrent, P2P pieces): the browser plays the
//              container and the codecs
//   remux      HLS from the gateway: the video copied, the audio converted to AAC when the
//              browser does not decode it
//   transcode  HLS from the gateway: video made H.264 and audio AAC
// hls says how HLS plays: 'mse' (hls.js), 'native' (a browser without Media Source Extensions
// that plays HLS itself: iPhone Safari), or null for direct.

// containerMIME is the MIME type a browser knows a container by.
export function containerMIME (container, path = '') {
  if (/matroska/.test(container)) return /\.webm$/i.test(path) ? 'video/webm' : 'video/x-matroska'
  if (/mp4|mov/.test(container)) return 'video/mp4'
  if (/^avi$/.test(container)) return 'video/x-msvideo'
  if (/mpegts/.test(container)) return 'video/mp2t'
  if (/^ogg$/.test(container)) return 'video/ogg'
  return 'application/octet-stream'
}

// playPlan returns { how, hls, why, audio } for file (a files[] entry with media.info) and the
// browser's caps: canPlay(type) → '' | 'maybe' | 'probably' (HTMLMediaElement.canPlayType),
// mse(type) → bool (MediaSource.isTypeSupported, or ManagedMediaSource's; null when the browser
// has neither), audioTrack, the index of the audio track the viewer chose (default: the file's
// default one, else the first), and transcode, what HLS the gateway makes ('on', 'remux', 'off':
// /api/config's transcode).
//
// The gateway's HLS is MPEG-TS with H.264 video and AAC audio: a remux copies H.264 video (and
// AAC audio; other audio is converted), anything else is transcoded.
export function playPlan (file, { canPlay, mse, audioTrack, transcode = 'on' } = {}) {
  const info = file?.media?.state === 'done' ? file.media.info : null
  if (!info) return { how: 'direct', hls: null, why: 'not probed: playing the file as it is', audio: null }
  const video = info.video[0]
  const audio = info.audio.find(a => a.index === audioTrack) ?? info.audio.find(a => a.default) ?? info.audio[0] ?? null
  const codecs = [video?.codec_string, audio?.codec_string].filter(Boolean)
  const type = `${containerMIME(info.container, file.path)}; codecs="${codecs.join(', ')}"`
  const onlyTrack = info.audio.length <= 1 || audio === info.audio[0]
  if ((video?.codec_string || !video) && (audio?.codec_string || !audio) && onlyTrack && canPlay(type) !== '') {
    return { how: 'direct', hls: null, why: `this browser plays ${type}`, audio: audio?.index ?? null }
  }
  const direct = why => ({ how: 'direct', hls: null, why, audio: audio?.index ?? null })
  if (!video) return direct('no video track: playing the file as it is')
  const hlsWay = mse ? 'mse' : (canPlay('application/vnd.apple.mpegurl') !== '' ? 'native' : null)
  if (!hlsWay) return direct('no way to play HLS here: trying the file as it is')
  const plays = t => mse ? mse(t) : canPlay(t) !== ''
  const videoOK = video.codec === 'h264' && video.codec_string && plays(`video/mp4; codecs="${video.codec_string}"`)
  const why = []
  if (!onlyTrack) why.push(`audio track ${audio.index} chosen`)
  let plan
  if (videoOK) {
    if (audio && audio.codec !== 'aac') why.push(`${audio.codec} audio converted to AAC`)
    plan = { how: 'remux', hls: hlsWay, why: [`${video.codec} video copied`, ...why].join('; '), audio: audio?.index ?? null }
  } else {
    why.unshift(video.codec === 'h264' ? 'this browser does not decode this H.264 profile' : `${video.codec} video is not H.264`)
    plan = { how: 'transcode', hls: hlsWay, why: why.join('; ') + ': converted to H.264/AAC', audio: audio?.index ?? null }
  }
  if (transcode === 'off') return direct(`it needs a ${plan.how} (${plan.why}), and this gateway makes no HLS: trying the file as it is`)
  if (transcode === 'remux' && plan.how === 'transcode') return direct(`it needs a transcode (${plan.why}), and this gateway only remuxes: trying the file as it is`)
  return plan
}

// browserCaps is what playPlan asks the browser: its own answers, unless caps (the page's
// ?caps= query, for tests and debugging) overrides them: comma-separated "no-mse" (as a
// browser without Media Source Extensions), "hls" (as one that plays HLS itself) and "-text"
// (as one that decodes no type whose description has text, e.g. -ac-3, -avc1, -x-matroska).
export function browserCaps ({ canPlayType, MediaSource }, caps = '') {
  const tokens = caps.split(',').map(t => t.trim()).filter(Boolean)
  const denied = tokens.filter(t => t.startsWith('-') && t.length > 1).map(t => t.slice(1))
  const deny = type => denied.some(d => type.includes(d))
  const nativeHLS = tokens.includes('hls')
  const canPlay = type => {
    if (deny(type)) return ''
    if (nativeHLS && type === 'application/vnd.apple.mpegurl') return 'maybe'
    return canPlayType(type)
  }
  const mse = MediaSource && !tokens.includes('no-mse') ? type => !deny(type) && MediaSource.isTypeSupported(type) : null
  return { canPlay, mse }
}

// ISO 639-2 codes (as files tag tracks) of common languages, to ISO 639-1 (as browsers name
// theirs).
const LANG1 = {
  eng: 'en', fra: 'fr', fre: 'fr', deu: 'de', ger: 'de', spa: 'es', ita: 'it', por: 'pt', rus: 'ru',
  jpn: 'ja', zho: 'zh', chi: 'zh', kor: 'ko', nld: 'nl', dut: 'nl', pol: 'pl', swe: 'sv', tur: 'tr',
  ara: 'ar', ukr: 'uk', ces: 'cs', cze: 'cs', dan: 'da', fin: 'fi', nor: 'no', ell: 'el', gre: 'el',
  heb: 'he', hin: 'hi', hun: 'hu', ron: 'ro', rum: 'ro', vie: 'vi', tha: 'th', ind: 'id'
}

// embeddedSubtitles lists the file's text subtitle tracks the gateway serves as WebVTT, as
// <track> attributes: { index, label, srclang, on }. The first in the viewer's language (lang,
// navigator.language) is on, or else a forced one.
export function embeddedSubtitles (info, lang = '') {
  const want = lang.toLowerCase().split('-')[0]
  const tracks = (info?.subtitles || []).filter(s => s.text).map(s => {
    const srclang = LANG1[s.language] || s.language || ''
    const label = [s.title, s.language].filter(Boolean).join(' · ') || `track ${s.index}`
    return { index: s.index, label, srclang, on: false, forced: !!s.forced }
  })
  const pick = tracks.find(t => want && t.srclang === want) || tracks.find(t => t.forced)
  if (pick) pick.on = true
  return tracks.map(({ forced, ...t }) => t)
}
