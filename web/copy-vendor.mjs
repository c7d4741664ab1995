// Copies webtorrent's prebuilt browser files from the pinned npm package into static/vendor, where
// the gateway embeds them. Run by `make web` after `npm ci --ignore-scripts`; CI checks that the
// committed copies are byte for byte what the package ships.
import { copyFileSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const dist = join(here, 'node_modules', 'webtorrent', 'dist')
const vendor = join(here, 'static', 'vendor')
mkdirSync(vendor, { recursive: true })
for (const name of ['webtorrent.min.js', 'sw.min.js']) {
  copyFileSync(join(dist, name), join(vendor, name))
  console.log(`web/static/vendor/${name}`)
}
