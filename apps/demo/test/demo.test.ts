import { expect, it } from 'vitest'
import { tsMlsDefaultCrypto } from '@mls/core'
import { createServices } from '@mls/server'
import { memoryServerStore } from '@mls/storage-memory'
import { memoryTransport } from '@mls/transport-memory'
import { runDemo } from '../src/demo.js'

it('the demo runs the four flows and every check holds, ending with B unable to read', async () => {
  const crypto = tsMlsDefaultCrypto()
  const lines: string[] = []
  const result = await runDemo({ transport: memoryTransport({ services: createServices({ store: memoryServerStore(), crypto }) }), crypto, print: (l) => lines.push(l) })
  expect(result.checks.length).toBeGreaterThanOrEqual(8)
  expect(result.checks.filter((c) => !c.ok)).toEqual([])
  expect(result.ok).toBe(true)
  expect(lines.join('\n')).toContain('B cannot read anything sent after its removal')
})
