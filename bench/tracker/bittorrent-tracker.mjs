// Runs bittorrent-tracker's websocket server for `go run ./bench/tracker`, the way that command
// runs ours in a child process: it prints the address it listens on, then answers each line on
// stdin: "mem" with a JSON line of its memory after a full garbage collection (node --expose-gc);
// it exits when stdin closes. The command embeds this file and runs a temporary copy of it.
//
//	node --expose-gc bench/tracker/bittorrent-tracker.mjs web/node_modules/bittorrent-tracker
import { createInterface } from 'node:readline'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const pkg = process.argv[2]
if (!pkg) {
  console.error('usage: node --expose-gc bittorrent-tracker.mjs PATH/TO/node_modules/bittorrent-tracker')
  process.exit(2)
}
const { default: Server } = await import(pathToFileURL(join(resolve(pkg), 'server.js')).href)
const version = (await import(pathToFileURL(join(resolve(pkg), 'package.json')).href, { with: { type: 'json' } })).default.version

const server = new Server({ udp: false, http: false, ws: true, stats: false, trustProxy: false })
server.on('error', err => { console.error('tracker error:', err.message); process.exit(1) })
server.on('warning', () => {}) // bad client data: reported to the client, not fatal
server.listen(0, '127.0.0.1', () => {
  const { port } = server.http.address()
  console.log(`listening ws://127.0.0.1:${port} bittorrent-tracker ${version} node ${process.version}`)
})

const lines = createInterface({ input: process.stdin })
lines.on('line', line => {
  switch (line.trim()) {
    case 'mem': {
      if (global.gc) global.gc()
      const m = process.memoryUsage()
      console.log(JSON.stringify({ rss: m.rss, heap: m.heapUsed, other: m.external + m.arrayBuffers }))
      break
    }
    default:
      console.log(JSON.stringify({ error: `unknown command ${line}` }))
  }
})
lines.on('close', () => process.exit(0))
