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

// Audio a remux keeps as it is inside fMP4 (anything else becomes AAC).
const MP4_AUDIO = /^(mp4a\.|opus|flac|ac-3|ec-3)/

// playPlan returns { how, hls, why, audio } for file (a files[] entry with media.info) and the
// browser's caps: canPlay(type) → '' | 'maybe' | 'probably' (HTMLMediaElement.canPlayType),
// mse(type) → bool (MediaSource.isTypeSupported, or ManagedMediaSource's; null when the browser
// has neither), and audioTrack, the index of the audio track the viewer chose (default: the
// file's default one, else the first).
export function playPlan (file, { canPlay, mse, audioTrack } = {}) {
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
  const hlsWay = mse ? 'mse' : (canPlay('application/vnd.apple.mpegurl') !== '' ? 'native' : null)
  if (!hlsWay) return { how: 'direct', hls: null, why: 'no way to play HLS here: trying the file as it is', audio: audio?.index ?? null }
  const plays = t => mse ? mse(t) : canPlay(t) !== ''
  const videoOK = video?.codec_string && plays(`video/mp4; codecs="${video.codec_string}"`)
  const audioOK = !audio || (MP4_AUDIO.test(audio.codec_string || '') && plays(`audio/mp4; codecs="${audio.codec_string}"`))
  const why = []
  if (!onlyTrack) why.push(`audio track ${audio.index} chosen`)
  if (videoOK) {
    if (!audioOK) why.push(`${audio.codec} audio converted to AAC`)
    return { how: 'remux', hls: hlsWay, why: [`${video.codec} video copied`, ...why].join('; '), audio: audio?.index ?? null }
  }
  why.unshift(video ? `this browser does not decode ${video.codec} video` : 'no video track')
  return { how: 'transcode', hls: hlsWay, why: why.join('; ') + ': converted to H.264/AAC', audio: audio?.index ?? null }
}
