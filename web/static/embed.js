// <swarm-player infohash="…" file="N"></swarm-player>: a responsive 16:9 iframe of this gateway's
// embed page; <swarm-player live="STREAM" latency="N"></swarm-player> the same of a live stream's
// (/live/STREAM/embed, latency segments behind the edge); live wins over infohash. Load it with
// <script src="https://<gateway>/embed.js" async></script>; the gateway is the origin this script
// came from. The element's .state is the player's window.swarmgate
// (state, mode, message, stats…), refreshed every second with a "swarmgate" event.
(() => {
  const script = document.currentScript ||
    [...document.querySelectorAll('script[src]')].find(s => /\/embed\.js(\?|#|$)/.test(s.src))
  const gateway = new URL(script ? script.src : location.href).origin
  if (customElements.get('swarm-player')) return

  class SwarmPlayer extends HTMLElement {
    static get observedAttributes () { return ['infohash', 'file', 'live', 'latency'] }

    constructor () {
      super()
      this.attachShadow({ mode: 'open' }).innerHTML = `<style>
:host { display: block; max-width: 100%; }
.box { position: relative; width: 100%; padding-top: 56.25%; background: #000; }
iframe { position: absolute; inset: 0; width: 100%; height: 100%; border: 0; }
</style><div class="box"></div>`
    }

    connectedCallback () {
      this.render()
      this._onMessage = ev => {
        const frame = this.shadowRoot.querySelector('iframe')
        if (ev.origin !== gateway || !frame || ev.source !== frame.contentWindow || ev.data?.type !== 'swarmgate') return
        const { type, ...state } = ev.data
        this.state = state
        this.dispatchEvent(new CustomEvent('swarmgate', { detail: state }))
      }
      window.addEventListener('message', this._onMessage)
    }

    disconnectedCallback () { window.removeEventListener('message', this._onMessage) }
    attributeChangedCallback () { this.render() }

    get src () {
      const stream = (this.getAttribute('live') || '').trim()
      if (stream) {
        const latency = (this.getAttribute('latency') || '').trim()
        const url = new URL(`/live/${encodeURIComponent(stream)}/embed`, gateway)
        if (/^\d+$/.test(latency)) url.searchParams.set('latency', latency)
        return url.href
      }
      const ih = (this.getAttribute('infohash') || '').trim().toLowerCase()
      const file = (this.getAttribute('file') || '').trim()
      const url = new URL(`/embed/${encodeURIComponent(ih)}`, gateway)
      if (/^\d+$/.test(file)) url.searchParams.set('file', file)
      return url.href
    }

    render () {
      if (!this.isConnected) return
      const box = this.shadowRoot.querySelector('.box')
      let frame = box.querySelector('iframe')
      if (!frame) {
        frame = document.createElement('iframe')
        frame.allow = 'autoplay; fullscreen; picture-in-picture'
        frame.allowFullscreen = true
        frame.title = this.getAttribute('title') || 'swarmgate player'
        box.append(frame)
      }
      if (frame.src !== this.src) frame.src = this.src
    }
  }
  customElements.define('swarm-player', SwarmPlayer)
})()
