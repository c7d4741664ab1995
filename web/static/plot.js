// The stats panel's plot: bytes per second by source (stacked areas) and upload (dashed), the
// last 60 seconds, for the watch and live pages.
import { formatRate } from './format.js'

// startPlot samples counters() (cumulative bytes: one key per series, and up) every second and
// draws them on canvas, with a legend in legendEl. series: [{ key, label, color }].
export function startPlot (canvas, legendEl, series, counters) {
  const history = []
  let last = null
  legendEl.replaceChildren(...series.map(s => {
    const span = document.createElement('span')
    span.innerHTML = `<i style="background:${s.color}"></i>${s.label}`
    return span
  }), Object.assign(document.createElement('span'), { innerHTML: '<i class="up"></i>upload' }))

  function draw () {
    const dpr = window.devicePixelRatio || 1
    const w = canvas.clientWidth
    const h = canvas.clientHeight
    if (canvas.width !== Math.round(w * dpr)) canvas.width = Math.round(w * dpr)
    if (canvas.height !== Math.round(h * dpr)) canvas.height = Math.round(h * dpr)
    const ctx = canvas.getContext('2d')
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0)
    ctx.clearRect(0, 0, w, h)
    const max = Math.max(1, ...history.map(p => Math.max(series.reduce((sum, s) => sum + p[s.key], 0), p.up)))
    const x = i => w - (history.length - 1 - i) * (w / 59)
    const y = v => h - 14 - (v / max) * (h - 20)
    // Stacked areas, the first series at the bottom.
    const base = history.map(() => 0)
    for (const s of series) {
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

  function sample () {
    const now = counters()
    if (last) {
      const point = { up: Math.max(0, now.up - last.up) }
      for (const s of series) point[s.key] = Math.max(0, now[s.key] - last[s.key])
      history.push(point)
      if (history.length > 60) history.shift()
    }
    last = now
    draw()
  }
  setInterval(sample, 1000)
  draw()
}
