// Rejoining the tracker within seconds after its websocket drops.
//
// The pages' tracker clients (bittorrent-tracker's WebSocketTracker, inside webtorrent and inside
// p2p-media-loader's bundle) reopen a dropped socket only after 10 s plus a random 0–5 min,
// doubling with each failure, and announce nothing meanwhile. When a node of a cluster dies, or a
// lone gateway restarts, a page so keeps its WebRTC wires but meets no new peer, and the gateway
// cannot offer to it, for minutes; after a restart its wire to the gateway is gone too, and its
// webseed was closed once that wire was up. Here a tracker reopens its socket after rejoinDelay instead: 1–3 s
// after a drop, the window growing by half with each failure in a row up to 15–30 s, at a random
// point of each window so that an audience dropped at once comes back spread over it rather than
// in lockstep. The URL stays the same: behind a load balancer, that reaches a live node. The
// growth is gentle because a gateway restarting gracefully is away for its drain (up to 10 s):
// its pages then try at about 2, 5, 9 and 15 s, and none waits more than one window (at most
// ~15 s, usually a few) after it is back; doubling would leave some waiting 24 s.
//
// The hook is the library's own decision point. Every drop (the socket's close or error) calls
// the tracker's _startReconnectTimer, whose timer reopens the socket (_openSocket, through the
// library's socket pool) and then announces on connect. rejoinSoon replaces that one method on
// the tracker instance, with the same effect on the tracker's state and another delay: the
// vendored files stay as they ship. The three copies of bittorrent-tracker the pages load
// (webtorrent.min.js, live.min.js, web/node_modules for node's tests) have the same code there.
// Pure enough for node's test runner: nothing here touches the DOM.

// The first window after a drop, how much each failure in a row widens it, the cap of the
// windows, and how long after a drop the next one counts as a new incident (backoff starts over)
// rather than one more failure in a row.
export const REJOIN_FIRST_MS = [1000, 3000]
export const REJOIN_GROWTH = 1.5
export const REJOIN_CAP_MS = [15_000, 30_000]
export const REJOIN_STABLE_MS = 60_000

// rejoinDelay is how long to wait before reopening the socket after the attempt-th drop in a row
// (0: the first): a random point (random() in [0, 1)) of the window [1 s, 3 s]·1.5^attempt, the
// window's ends capped at 15 s and 30 s.
export function rejoinDelay (attempt, random = Math.random) {
  const grow = REJOIN_GROWTH ** Math.min(Math.max(0, Math.floor(attempt) || 0), 32)
  const lo = Math.min(REJOIN_FIRST_MS[0] * grow, REJOIN_CAP_MS[0])
  const hi = Math.min(REJOIN_FIRST_MS[1] * grow, REJOIN_CAP_MS[1])
  return Math.round(lo + Math.min(Math.max(random(), 0), 1) * (hi - lo))
}

// nextAttempt numbers a drop at now given the previous one (last: {attempt, at}, or null): one
// more in a row when it comes within REJOIN_STABLE_MS of the previous drop (a reopened socket
// that failed, or a flapping node), else 0. A socket that failed to connect drops again at most
// a capped window (30 s) plus its connect time after the previous drop, so the backoff holds
// while a tracker stays unreachable.
export function nextAttempt (last, now) {
  if (!last || !(now - last.at < REJOIN_STABLE_MS)) return { attempt: 0, at: now }
  return { attempt: last.attempt + 1, at: now }
}

// isWebSocketTracker says whether t looks like bittorrent-tracker's WebSocketTracker, the one
// tracker kind browsers use, with the methods rejoinSoon relies on.
export function isWebSocketTracker (t) {
  return t != null && typeof t._startReconnectTimer === 'function' && typeof t._openSocket === 'function' &&
    typeof t.announceUrl === 'string' && /^wss?:/.test(t.announceUrl)
}

const hooked = new WeakSet()

// rejoinSoon makes tracker (a WebSocketTracker) reopen its socket after rejoinDelay on every drop,
// and takes over a reconnect the library already scheduled. It returns whether tracker is (now)
// hooked; calling it again is a no-op. opts (for tests): delay(attempt) → ms, now() → ms,
// onSchedule(ms, attempt, tracker).
export function rejoinSoon (tracker, { delay = rejoinDelay, now = Date.now, onSchedule = logSchedule } = {}) {
  if (!isWebSocketTracker(tracker)) return false
  if (hooked.has(tracker)) return true
  hooked.add(tracker)
  let last = null
  // As the library's: the tracker waits "reconnecting" (announces are dropped, not queued on a
  // dead socket), then reopens. Its destroy() clears reconnectTimer; a client destroyed while
  // the tracker waits (the page went on to another torrent) must not reopen it, which the
  // library's own timer does not check.
  tracker._startReconnectTimer = function () {
    last = nextAttempt(last, now())
    const ms = delay(last.attempt)
    this.reconnecting = true
    clearTimeout(this.reconnectTimer)
    this.reconnectTimer = setTimeout(() => {
      if (this.client?.destroyed) return
      this.retries++
      this._openSocket()
      // The library's pool hands a tracker the socket another tracker of the same URL opened,
      // and when that socket is still connecting it never calls the tracker's _onSocketConnect:
      // the tracker would stay "reconnecting", dropping its announces, until the socket closes
      // again. _onSocketConnect runs once per reconnect (it clears reconnecting), so a second
      // call where the library did wait is a no-op.
      const socket = this.socket
      if (socket && !socket.connected && typeof socket.once === 'function') {
        socket.once('connect', () => this._onSocketConnect?.())
      }
    }, ms)
    onSchedule?.(ms, last.attempt, this)
  }
  // A drop before the hook: the library's own timer (10 s to 5 min) is pending.
  if (tracker.reconnecting) tracker._startReconnectTimer()
  return true
}

function logSchedule (ms, attempt, tracker) {
  console.info(`swarmgate: tracker socket ${tracker.announceUrl} dropped; rejoining in ${(ms / 1000).toFixed(1)} s (attempt ${attempt + 1})`)
}

// torrentTrackers are a webtorrent torrent's websocket trackers (its discovery's tracker client
// makes them before the torrent's 'ready').
export function torrentTrackers (torrent) {
  return (torrent?.discovery?.tracker?._trackers ?? []).filter(isWebSocketTracker)
}

// rejoinTorrent hooks a webtorrent torrent's trackers (rejoinSoon) once it is ready.
export function rejoinTorrent (torrent, opts) {
  const hook = () => { for (const t of torrentTrackers(torrent)) rejoinSoon(t, opts) }
  if (torrent.ready) hook()
  else torrent.once('ready', hook)
}

// p2pmlTrackers are the websocket trackers of p2p-media-loader (2.x) behind an hls.js instance made
// with its HlsJsP2PEngine: one tracker client per stream loader, made when the stream's first
// segment loads and destroyed with the loader.
export function * p2pmlTrackers (hls) {
  const core = hls?.p2pEngine?.core
  for (const hybrid of [core?.mainStreamLoader, core?.secondaryStreamLoader]) {
    const loaders = hybrid?.p2pLoaders?.loaders
    if (typeof loaders?.values !== 'function') continue
    for (const item of loaders.values()) {
      for (const t of item?.loader?.trackerClient?.client?._trackers ?? []) {
        if (isWebSocketTracker(t)) yield t
      }
    }
  }
}

// P2PML_LOOK_MS is how often rejoinHls looks for new tracker clients of p2p-media-loader, which
// says nothing when it makes one.
export const P2PML_LOOK_MS = 1000

// rejoinHls hooks the trackers of p2p-media-loader behind hls (rejoinSoon) as they come, until
// hls is destroyed. It returns a function that stops looking.
export function rejoinHls (hls, opts) {
  const timer = setInterval(() => {
    for (const t of p2pmlTrackers(hls)) rejoinSoon(t, opts)
  }, P2PML_LOOK_MS)
  const stop = () => clearInterval(timer)
  hls.on?.('hlsDestroying', stop) // Hls.Events.DESTROYING
  return stop
}
