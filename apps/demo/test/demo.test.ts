import { expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { jsonLogger, parseConfig, startServer } from '@mls/app-server'
import { nodeCrypto } from '@mls/crypto-node'
import { webSockets } from '@mls/transport-ws'
import { runDemo } from '../src/demo.js'

it('the demo runs the four flows over real sockets and every check holds, ending with B unable to read', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mls-demo-test-'))
  const server = await startServer(parseConfig(['--port', '0', '--data-dir', dataDir], {}), jsonLogger('error'))
  const lines: string[] = []
  try {
    const result = await runDemo({ transport: () => webSockets({ url: server.url, WebSocket }), crypto: nodeCrypto(), print: (l) => lines.push(l) })
    expect(result.checks.length).toBeGreaterThanOrEqual(9)
    expect(result.checks.filter((c) => !c.ok)).toEqual([])
    expect(result.ok).toBe(true)
    const out = lines.join('\n')
    expect(out).toContain('B cannot read anything sent after its removal')
    expect(out).toMatch(/cannot decrypt/)
    // Every client closed its connection when the demo ended.
    for (let i = 0; i < 100 && server.stats().authenticated > 0; i++) await new Promise((r) => setTimeout(r, 20))
    expect(server.stats().authenticated).toBe(0)
  } finally {
    await server.close()
    rmSync(dataDir, { recursive: true, force: true })
  }
})
