// How every page writes bytes and rates: IEC binary units (1 KiB = 1024 B), one system for the
// home page, the watch page and the live page, so that the same count reads the same everywhere.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB']

// formatBytes writes a count of bytes: whole bytes below 1 KiB, then one decimal below 100 of a
// unit and none from there ("0 B", "1023 B", "1.5 KiB", "100 KiB", "1.0 MiB"). A count that is
// not a number of bytes (undefined, NaN, negative) is written "–".
export function formatBytes (n) {
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return '–'
  let i = 0
  while (n >= 1024 && i < UNITS.length - 1) {
    n /= 1024
    i++
  }
  // 1023.96 KiB rounds to 1024: that is 1.0 MiB.
  if (Math.round(n) >= 1024 && i < UNITS.length - 1) {
    n /= 1024
    i++
  }
  // One decimal while it says something: 99.96 KiB is written "100 KiB", not "100.0 KiB".
  return `${n.toFixed(i === 0 || n >= 99.95 ? 0 : 1)} ${UNITS[i]}`
}

// formatRate writes bytes per second, in the same units ("1.5 KiB/s"); "–" where formatBytes
// writes it.
export function formatRate (bytesPerSecond) {
  const b = formatBytes(bytesPerSecond)
  return b === '–' ? b : `${b}/s`
}
