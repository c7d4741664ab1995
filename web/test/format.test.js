// Unit tests of static/format.js, run by `make test` with node's test runner. They live outside
// static/, which the gateway embeds and serves.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { formatBytes, formatRate } from '../static/format.js'

test('formatBytes writes IEC binary units', () => {
  const cases = [
    [0, '0 B'],
    [1, '1 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [1000, '1000 B'], // not "1.0 kB": one unit system, binary
    [99.5 * 1024, '99.5 KiB'],
    [100 * 1024, '100 KiB'],
    [1023 * 1024, '1023 KiB'],
    [1024 ** 2, '1.0 MiB'],
    [5.25 * 1024 ** 2, '5.3 MiB'],
    [1024 ** 3, '1.0 GiB'],
    [1024 ** 4, '1.0 TiB'],
    [2048 * 1024 ** 4, '2048 TiB'] // the largest unit keeps counting
  ]
  for (const [n, want] of cases) assert.equal(formatBytes(n), want, `formatBytes(${n})`)
})

test('formatBytes carries a rounding over 1024 into the next unit', () => {
  assert.equal(formatBytes(1023.6), '1.0 KiB')
  assert.equal(formatBytes(1024 * 1024 - 1), '1.0 MiB')
  assert.equal(formatBytes(99.97 * 1024), '100 KiB')
})

test('formatBytes writes what is not a count of bytes as a dash', () => {
  for (const n of [undefined, null, NaN, Infinity, -1, '12']) assert.equal(formatBytes(n), '–', `formatBytes(${n})`)
})

test('formatRate is formatBytes per second', () => {
  assert.equal(formatRate(0), '0 B/s')
  assert.equal(formatRate(2.5 * 1024 ** 2), '2.5 MiB/s')
  assert.equal(formatRate(undefined), '–')
})
