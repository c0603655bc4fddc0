#!/usr/bin/env node
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { page, STYLE } from './page.js'

const ENTRY = fileURLToPath(new URL('../src/browser/main.ts', import.meta.url))

export interface WebServerInit {
  /** Default 5173; 0 picks a free port. */
  port?: number
  /** Default 127.0.0.1. */
  host?: string
  /** The mls-server URL offered at sign-in. Default `ws://127.0.0.1:8080`. */
  server?: string
}

export interface WebServer {
  readonly url: string
  close(): Promise<void>
}

/** Bundle the app from its sources (workspace packages through their `source` condition) for the browser. */
export async function bundleApp(): Promise<string> {
  const result = await build({
    entryPoints: [ENTRY],
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    conditions: ['source', 'module'],
    logLevel: 'silent',
    legalComments: 'none'
  })
  return result.outputFiles[0]!.text
}

/** Serve the page, its style and the bundle over HTTP. */
export async function startWebServer(init: WebServerInit = {}): Promise<WebServer> {
  const script = await bundleApp()
  const html = page(init.server ?? 'ws://127.0.0.1:8080')
  const files: Record<string, [string, string]> = {
    '/': ['text/html; charset=utf-8', html],
    '/app.js': ['text/javascript; charset=utf-8', script],
    '/app.css': ['text/css; charset=utf-8', STYLE]
  }
  const server: Server = createServer((request, response) => {
    const file = files[new URL(request.url ?? '/', 'http://x').pathname]
    if (file === undefined) {
      response.writeHead(404).end('not found')
      return
    }
    response.writeHead(200, { 'content-type': file[0], 'cache-control': 'no-store' }).end(file[1])
  })
  const host = init.host ?? '127.0.0.1'
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(init.port ?? 5173, host, resolve)
  })
  const { port } = server.address() as AddressInfo
  return { url: `http://${host}:${port}/`, close: () => new Promise((resolve) => server.close(() => resolve())) }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const value = (flag: string): string | undefined => {
    const index = process.argv.indexOf(flag)
    return index < 0 ? undefined : process.argv[index + 1]
  }
  const web = await startWebServer({ port: Number(value('--port') ?? process.env.MLS_WEB_PORT ?? 5173), server: value('--server') ?? process.env.MLS_WEB_SERVER })
  process.stdout.write(`MLS web chat at ${web.url} (start a server with \`pnpm start\`; the sign-in form names it)\n`)
}
