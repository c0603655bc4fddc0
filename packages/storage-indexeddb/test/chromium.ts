import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { chromium, type BrowserContext, type Page } from 'playwright-core'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ENSURE_CHROMIUM = fileURLToPath(new URL('../../../scripts/ensure-chromium.mjs', import.meta.url))
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']

/**
 * Install Debian's Chromium when it is missing (the repo's own script). The
 * browser tests run it too, maybe at the same moment on a fresh machine: when
 * it fails (apt locked by the other run), wait and look again.
 */
export function ensureChromium(): void {
  for (let attempt = 1; ; attempt++) {
    try {
      execFileSync(process.execPath, [ENSURE_CHROMIUM], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 15 * 60_000 })
      break
    } catch (error) {
      if (existsSync(CHROMIUM)) break
      if (attempt >= 5) throw error
      execFileSync('sleep', [String(5 * attempt)])
    }
  }
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing after scripts/ensure-chromium.mjs`)
}

/** `page/entry.ts` and everything it imports as one ES module, `vitest` mapped to the in-page runner. */
export async function bundlePage(): Promise<string> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('./page/entry.ts', import.meta.url))],
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    conditions: ['source', 'module'],
    alias: { vitest: fileURLToPath(new URL('./page/vitest-in-page.ts', import.meta.url)) },
    logLevel: 'silent',
    legalComments: 'none'
  })
  const output = result.outputFiles[0]
  if (output === undefined) throw new Error('esbuild produced no output')
  return output.text
}

const PAGE = '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>@mls/storage-indexeddb</title><link rel="icon" href="data:,"></head><body><script type="module" src="/entry.js"></script></body></html>'

export interface PageServer {
  readonly url: string
  close(): Promise<void>
}

/** Serve the page and its bundle on 127.0.0.1 (a secure context: IndexedDB needs an origin). */
export async function servePage(bundle: string): Promise<PageServer> {
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname
    if (path === '/') res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(PAGE)
    else if (path === '/entry.js') res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' }).end(bundle)
    else res.writeHead(404).end()
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

/** A Chromium with its own new, empty profile directory. */
export interface Browser {
  readonly profile: string
  context: BrowserContext
  /** Open the page and wait until its helpers are there. */
  open(url: string): Promise<Page>
  /** Close Chromium and start it again on the same profile. */
  restart(): Promise<void>
  close(): Promise<void>
  /** Remove the profile directory. */
  dispose(): void
}

const launch = (profile: string): Promise<BrowserContext> => chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 })

export async function startBrowser(errors: string[]): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'mls-storage-indexeddb-'))
  const browser: Browser = {
    profile,
    context: await launch(profile),
    async open(url) {
      const page = await browser.context.newPage()
      page.on('pageerror', (e) => errors.push(`${e.name}: ${e.message}`))
      await page.goto(url)
      await page.waitForFunction(() => window.__idb !== undefined, undefined, { polling: 20 })
      return page
    },
    async restart() {
      await browser.context.close()
      browser.context = await launch(profile)
    },
    close: () => browser.context.close().catch(() => undefined),
    dispose: () => rmSync(profile, { recursive: true, force: true })
  }
  return browser
}

/** Every regular file under `dir`, with where `needle` occurs in it. */
export function scanFiles(dir: string, needle: Uint8Array): { file: string; size: number; hits: number }[] {
  const out: { file: string; size: number; hits: number }[] = []
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const path = join(d, name)
      const stat = statSync(path, { throwIfNoEntry: false })
      if (stat === undefined) continue
      if (stat.isDirectory()) walk(path)
      else if (stat.isFile()) {
        const data = readFileSync(path)
        let hits = 0
        for (let at = data.indexOf(needle); at !== -1; at = data.indexOf(needle, at + 1)) hits++
        out.push({ file: relative(dir, path), size: stat.size, hits })
      }
    }
  }
  walk(dir)
  return out
}
