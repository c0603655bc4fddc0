import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { createServices } from '@mls/server'
import { memoryServerStore } from '@mls/storage-memory'
import { webSockets } from '../src/index.js'
import { webSocketServer } from '../src/server.js'
import { credentialsFor, crypto } from './helpers.js'

const source = (file: string) => readFileSync(new URL(`../src/${file}`, import.meta.url), 'utf8')

describe('package shape', () => {
  it('the client entry never imports ws or the server, so browser bundles stay free of them', () => {
    const reachable = new Set<string>()
    const visit = (file: string) => {
      if (reachable.has(file)) return
      reachable.add(file)
      for (const [, spec] of source(file).matchAll(/^(?:import|export)\b[^;]*?from '([^']+)'/gms)) {
        expect(spec).not.toBe('ws')
        expect(spec).not.toMatch(/^node:/)
        if (spec!.startsWith('./')) visit(spec!.slice(2).replace(/\.js$/, '.ts'))
      }
    }
    visit('index.ts')
    expect([...reachable].sort()).toEqual(['client-options.ts', 'client.ts', 'codec.ts', 'index.ts'])
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { exports: Record<string, unknown> }
    expect(Object.keys(pkg.exports)).toEqual(['.', './server', './package.json'])
  })

  it('is a versioned, branded core Transport; without a WebSocket constructor it says how to pass one', () => {
    const transport = webSockets({ url: 'ws://127.0.0.1:1/', WebSocket })
    expect(transport.specificationVersion).toBe('v1')
    expect(Object.prototype.toString.call(transport)).toBe('[object WebSocketTransport]')
    expect(() => webSockets({ url: 'http://example.test/', WebSocket })).toThrow(/ws:\/\//)
    if ((globalThis as { WebSocket?: unknown }).WebSocket === undefined) {
      expect(() => webSockets({ url: 'ws://127.0.0.1:1/' })).toThrow(/WebSocket/)
    }
  })

  it('attaches to an existing HTTP server on a path, leaves /health routing and the server itself to its owner', async () => {
    const services = createServices({ store: memoryServerStore(), crypto })
    const attached: { handle?: Awaited<ReturnType<typeof webSocketServer>> } = {}
    const http = createServer((req, res) => {
      if (attached.handle?.handleHealth(req, res) !== true) res.writeHead(418).end()
    })
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    const handle = await webSocketServer({ services, server: http, path: '/mls' })
    attached.handle = handle
    const port = (http.address() as AddressInfo).port
    expect(handle.url).toBe(`ws://127.0.0.1:${port}/mls`)
    const connection = await webSockets({ url: handle.url, WebSocket }).connect(await credentialsFor('host/phone'))
    const health = await fetch(`http://127.0.0.1:${port}/health`)
    expect(await health.json()).toMatchObject({ status: 'ok', connections: 1, authenticated: 1 })
    expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(418)
    await handle.close()
    await expect(connection.directory.countKeyPackages({ signal: AbortSignal.timeout(2000) })).rejects.toMatchObject({ code: expect.stringMatching(/TRANSPORT_|ABORTED/) })
    await connection.close()
    expect(http.listening).toBe(true)
    await new Promise<void>((resolve) => http.close(() => resolve()))
  })

  it('its own HTTP server answers /health with 200 JSON and anything else with 404', async () => {
    const services = createServices({ store: memoryServerStore(), crypto })
    const server = await webSocketServer({ services })
    const base = server.url.replace('ws://', 'http://')
    const health = await fetch(`${base}health`)
    expect(health.status).toBe(200)
    expect(health.headers.get('content-type')).toBe('application/json')
    expect(await health.json()).toMatchObject({ status: 'ok', protocolVersion: 2, connections: 0, authenticated: 0 })
    expect((await fetch(`${base}nope`)).status).toBe(404)
    await server.close()
    await server.close()
  })
})
