// Builds static/vendor from the pinned npm packages, where the gateway embeds it: webtorrent's
// prebuilt browser files, copied as they ship, and live.min.js, the live page's bundle of hls.js
// and p2p-media-loader (live-entry.js), built with esbuild. Run by `make web` after
// `npm ci --ignore-scripts`; CI checks that the committed files are byte for byte what this makes.
import { copyFileSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const here = dirname(fileURLToPath(import.meta.url))
const dist = join(here, 'node_modules', 'webtorrent', 'dist')
const vendor = join(here, 'static', 'vendor')
mkdirSync(vendor, { recursive: true })
for (const name of ['webtorrent.min.js', 'sw.min.js']) {
  copyFileSync(join(dist, name), join(vendor, name))
  console.log(`web/static/vendor/${name}`)
}

// esbuild's output depends only on its version, these options and the input files, so the bundle
// is reproducible. p2p-media-loader-core's "p2pml:core-as-bundle" build carries its own browser
// shims for bittorrent-tracker's Node imports.
await build({
  absWorkingDir: here,
  entryPoints: ['live-entry.js'],
  outfile: join(vendor, 'live.min.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2020',
  conditions: ['p2pml:core-as-bundle'],
  minify: true,
  sourcemap: false,
  legalComments: 'eof',
  logLevel: 'warning',
})
console.log('web/static/vendor/live.min.js')
