import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { nodeCrypto } from '@mls/crypto-node'
import { createServices, type Services } from '@mls/server'
import { memoryServerStore } from '@mls/storage-memory'
import { webSocketServer, type WebSocketServerHandle } from '@mls/transport-ws/server'
import { bundleBrowserEntry, type BrowserBundle } from '../src/bundle.js'
import { servePage, type PageServer } from '../src/page-server.js'
import type { PageResult } from '../src/result.js'
import { malformedServer } from './malformed-server.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ENSURE_CHROMIUM = fileURLToPath(new URL('../../../scripts/ensure-chromium.mjs', import.meta.url))
/** A host name Chromium resolves to 127.0.0.1 itself: plain http from it is not a secure context (no crypto.subtle). */
const INSECURE_HOST = 'mls-insecure.test'
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  `--host-resolver-rules=MAP ${INSECURE_HOST} 127.0.0.1`
]
const USERS = ['alice', 'bob', 'carol']
const SUITES = { 1: 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519', 3: 'MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519' } as const

let bundle: BrowserBundle
let services: Services
let wsServer: WebSocketServerHandle | undefined
let pageServer: PageServer | undefined
let context: BrowserContext | undefined
let profile: string | undefined
const consoleLines: string[] = []
const pageErrors: string[] = []

beforeAll(async () => {
  // A fresh machine has no Chromium: install Debian's package (needs root and apt).
  execFileSync(process.execPath, [ENSURE_CHROMIUM], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 15 * 60_000 })
  expect(existsSync(CHROMIUM)).toBe(true)

  bundle = await bundleBrowserEntry()
  services = createServices({ store: memoryServerStore(), crypto: nodeCrypto() })
  wsServer = await webSocketServer({ services, host: '127.0.0.1', port: 0 })
  pageServer = await servePage(bundle.code)

  profile = mkdtempSync(join(tmpdir(), 'mls-browser-tests-'))
  context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 })
}, 16 * 60_000)

afterAll(async () => {
  await context?.close().catch(() => undefined)
  await pageServer?.close()
  await wsServer?.close()
  if (profile !== undefined) rmSync(profile, { recursive: true, force: true })
}, 60_000)

async function openPage(url: string): Promise<Page> {
  const page = await context!.newPage()
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`))
  page.on('pageerror', (e) => pageErrors.push(`${e.name}: ${e.message}`))
  await page.goto(url)
  return page
}

async function pageResult(page: Page): Promise<PageResult> {
  await page.waitForFunction(() => (window as { __result?: unknown }).__result !== undefined, undefined, { timeout: 100_000, polling: 100 })
  return (await page.evaluate(() => (window as { __result?: unknown }).__result)) as PageResult
}

function failures(result: PageResult): string {
  return result.checks
    .filter((c) => !c.ok)
    .map((c) => `${c.name}: ${c.detail ?? ''}`)
    .join('\n')
}

/** Open the page at `origin`, wait for its result, and check everything it reports. */
async function fullRun(origin: string, id: string): Promise<PageResult> {
  const started = Date.now()
  const page = await openPage(`${origin}?server=${encodeURIComponent(wsServer!.url)}&id=${id}`)
  const result = await pageResult(page)
  const shot = join(tmpdir(), `mls-browser-tests${id}.png`)
  await page.screenshot({ path: shot, fullPage: true }).catch(() => undefined)
  await page.close()

  expect(failures(result), `console:\n${consoleLines.join('\n')}`).toBe('')
  expect(pageErrors).toEqual([])
  expect(result.ok).toBe(true)
  expect(result.environment).toMatchObject({ process: 'undefined', webAssembly: true, webSocket: true })
  expect(result.environment.userAgent).toMatch(/Chrome\/\d+/)

  // Crypto checks ran for both providers on both suites, the flows on both suites.
  for (const provider of ['noble', 'libsodium']) {
    for (const suite of [1, 3]) expect(result.checks.filter((c) => c.name.startsWith(`${provider} suite ${suite}:`)).length, `${provider} suite ${suite}`).toBe(7)
  }
  for (const suite of [1, 3]) expect(result.checks.filter((c) => c.name.startsWith(`flows suite ${suite}:`)).length).toBe(7)

  // The members really ran their providers in the page: A and B on noble, C on libsodium.
  expect(result.flows.map((f) => f.ciphersuite)).toEqual([SUITES[1], SUITES[3]])
  for (const flow of result.flows) {
    const suffix = `${flow.ciphersuite === SUITES[3] ? '-s3' : '-s1'}${id}`
    expect(flow.clients.map((c) => [c.clientId, c.provider, c.ciphersuite])).toEqual([
      [`alice${suffix}/browser`, 'noble', flow.ciphersuite],
      [`bob${suffix}/browser`, 'noble', flow.ciphersuite],
      [`carol${suffix}/browser`, 'libsodium', flow.ciphersuite]
    ])
    for (const client of flow.clients) {
      expect(client.calls['signature.sign'] ?? 0, client.clientId).toBeGreaterThan(0)
      expect(client.calls['signature.verify'] ?? 0, client.clientId).toBeGreaterThan(0)
      expect((client.calls['hpke.seal'] ?? 0) + (client.calls['hpke.open'] ?? 0), client.clientId).toBeGreaterThan(0)
      expect(client.calls['hpke.decryptAead'] ?? 0, client.clientId).toBeGreaterThan(0)
    }
    expect(Object.keys(flow.epochAuthenticators)).toEqual(['1', '2', '3', '4'])
    expect(new Set(Object.values(flow.epochAuthenticators)).size).toBe(4)
  }

  // The server registered the page's identities, on the right suites.
  for (const [suite, name] of Object.entries(SUITES)) {
    for (const user of USERS) {
      const clientId = `${user}-s${suite}${id}/browser`
      const identity = await services.directory.lookupIdentity(`alice-s${suite}${id}/browser`, clientId)
      expect(identity, clientId).toMatchObject({ clientId, ciphersuite: name })
    }
  }
  console.log(`browser run at ${origin}: ${result.checks.length} checks in ${result.durationMs} ms in the page, ${Date.now() - started} ms in all (screenshot ${shot})`)
  return result
}

describe('the browser bundle', () => {
  it('takes the workspace packages from source, the transport client without `ws`, and stubs only the known dead Node paths', () => {
    const has = (fragment: string) => bundle.inputs.some((i) => i.includes(fragment))
    for (const source of ['crypto-noble/src/index.ts', 'crypto-libsodium/src/index.ts', 'transport-ws/src/client.ts', 'storage-memory/src/index.ts', 'core/src/index.ts', 'libsodium-sumo']) {
      expect(has(source), source).toBe(true)
    }
    expect(has('transport-ws/src/server.ts')).toBe(false)
    expect(bundle.inputs.filter((i) => /[\\/]ws@|node_modules[\\/]ws[\\/]/.test(i))).toEqual([])
    expect(bundle.inputs.filter((i) => i.includes('crypto-node'))).toEqual([])
    expect(new Set(bundle.stubbed.map((s) => s.module))).toEqual(new Set(['crypto']))
    for (const s of bundle.stubbed) expect(s.importer).toMatch(/libsodium-sumo|@hpke[\\/]common/)
  })
})

describe('in headless Chromium', () => {
  it('noble and libsodium pass their checks and run the four flows over the page WebSocket against a real server', async () => {
    const result = await fullRun(pageServer!.url, '')
    expect(result.environment).toMatchObject({ secureContext: true, subtleCrypto: true })
    expect(pageServer!.requests).toEqual(expect.arrayContaining(['/', '/browser-entry.js']))
    const stats = wsServer!.stats()
    expect(stats.authenticated).toBe(0) // the page closed its clients
    expect(stats.internalErrors).toBe(0)
    expect(stats.protocolErrors).toBe(0)
    expect(stats.framesReceived).toBeGreaterThan(50)
  }, 120_000)

  it('the same without WebCrypto: plain http from a host that is not localhost (no crypto.subtle)', async () => {
    const origin = pageServer!.url.replace('127.0.0.1', INSECURE_HOST)
    const result = await fullRun(origin, '-insecure')
    expect(result.environment).toMatchObject({ secureContext: false, subtleCrypto: false })
    expect(wsServer!.stats().internalErrors).toBe(0)
  }, 120_000)
})

describe('the transport client in Chromium against a server that sends malformed frames', () => {
  it('closes every connection it drops (the browser socket really closes) and reconnects', async () => {
    const bad = await malformedServer()
    try {
      const page = await openPage(`${pageServer!.url}?probe=malformed&server=${encodeURIComponent(bad.url)}`)
      const result = await pageResult(page)
      // The page stays open: a socket the client dropped without closing is still open now.
      const deadline = Date.now() + 3000
      while (bad.sockets.some((s) => s.code === undefined) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
      const leaked = bad.sockets.filter((s) => s.code === undefined).length
      const codes = new Set(bad.sockets.map((s) => s.code))
      await page.close()
      expect(failures(result), `console:\n${consoleLines.join('\n')}`).toBe('')
      expect(bad.sockets.length).toBeGreaterThanOrEqual(3)
      expect(bad.sockets.every((s) => s.poisoned)).toBe(true)
      // Browsers refuse close(1003) from script: the client falls back to 1000.
      expect(codes).toEqual(new Set([1000]))
      expect(leaked, `${leaked} of ${bad.sockets.length} dropped connections left open by the client: ${JSON.stringify(bad.sockets)}`).toBe(0)
    } finally {
      await bad.close()
    }
  }, 60_000)
})
