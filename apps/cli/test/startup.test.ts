import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CHAT_MAIN, ensureTmux, freePort } from './terminal.js'

describe('mls-chat startup', () => {
  it('exits 1 with the reason when the server cannot be reached, and 2 on a bad command line', async () => {
    ensureTmux() // also checks the built main exists
    const dataDir = mkdtempSync(join(tmpdir(), 'mls-chat-startup-'))
    try {
      const port = await freePort() // closed again: nothing listens there
      const unreachable = spawnSync(process.execPath, [CHAT_MAIN, '--user', 'zed', '--server', `ws://127.0.0.1:${port}`, '--data-dir', dataDir], { encoding: 'utf8', input: '', timeout: 30_000 })
      expect(unreachable.status).toBe(1)
      expect(unreachable.stderr).toMatch(/mls-chat: cannot start: .*connection refused/)
      const bad = spawnSync(process.execPath, [CHAT_MAIN, '--server', 'http://x'], { encoding: 'utf8', timeout: 30_000, env: { PATH: process.env.PATH } })
      expect(bad.status).toBe(2)
      expect(bad.stderr).toMatch(/--user is required/)
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  })
})
