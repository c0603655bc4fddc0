import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface PageServer {
  /** `http://127.0.0.1:PORT/` */
  readonly url: string
  /** Paths requested so far, in order. */
  readonly requests: readonly string[]
  close(): Promise<void>
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>@mls browser tests</title>
<link rel="icon" href="data:,">
<style>body { font: 13px/1.4 monospace; margin: 1em; } pre { white-space: pre-wrap; }</style>
</head>
<body>
<h1>MLS in the browser</h1>
<p>@mls/crypto-noble, @mls/crypto-libsodium and the @mls/transport-ws client over this page's WebSocket.</p>
<pre id="log"></pre>
<script type="module" src="/browser-entry.js"></script>
</body>
</html>
`

/** A tiny HTTP server on 127.0.0.1 serving the test page at `/` and the bundle at `/browser-entry.js`. */
export async function servePage(bundle: string): Promise<PageServer> {
  const requests: string[] = []
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname
    requests.push(path)
    if (req.method !== 'GET') {
      res.writeHead(405).end()
    } else if (path === '/' || path === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(PAGE)
    } else if (path === '/browser-entry.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' }).end(bundle)
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found')
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}
