import { createRequire } from 'node:module'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { start, type StartedProcess } from './processes.js'

/** A verdaccio registry on loopback with a user allowed to publish. */
export interface LocalRegistry {
  /** `http://127.0.0.1:<port>/` */
  readonly url: string
  /** Lines for an .npmrc that point npm and pnpm at this registry, with the publishing user's token. */
  readonly npmrc: string
  readonly process: StartedProcess
  close(): Promise<void>
}

/** A port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

/**
 * Start verdaccio with its storage in `directory`. Our scope `@mls` is served
 * only from what is published to it (never proxied, so a same-named package
 * elsewhere cannot stand in); every other package is proxied to `uplink`.
 */
export async function startRegistry(directory: string, uplink: string): Promise<LocalRegistry> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}/`
  const config = join(directory, 'config.yaml')
  writeFileSync(
    config,
    [
      `storage: ${JSON.stringify(join(directory, 'storage'))}`,
      'max_body_size: 100mb',
      'auth:',
      '  htpasswd:',
      `    file: ${JSON.stringify(join(directory, 'htpasswd'))}`,
      'uplinks:',
      '  upstream:',
      `    url: ${JSON.stringify(uplink)}`,
      '    timeout: 60s',
      'packages:',
      "  '@mls/*':",
      '    access: $all',
      '    publish: $authenticated',
      "  '**':",
      '    access: $all',
      '    publish: $authenticated',
      '    proxy: upstream',
      'log: { type: stdout, format: pretty, level: warn }',
      ''
    ].join('\n')
  )
  const bin = join(createRequire(import.meta.url).resolve('verdaccio/package.json'), '..', 'bin', 'verdaccio')
  const child = start(process.execPath, [bin, '--config', config, '--listen', `127.0.0.1:${port}`], { cwd: directory })
  await child.waitFor(/http address/, 60_000)
  // Register the publishing user (verdaccio's htpasswd plugin allows sign-up) and take its token.
  const response = await fetch(`${url}-/user/org.couchdb.user:rehearsal`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'rehearsal', password: 'rehearsal-password' })
  })
  const body = (await response.json()) as { token?: string }
  if (!response.ok || typeof body.token !== 'string') throw new Error(`cannot register with verdaccio: ${response.status} ${JSON.stringify(body)}`)
  const npmrc = [`registry=${url}`, `//127.0.0.1:${port}/:_authToken=${body.token}`, ''].join('\n')
  return {
    url,
    npmrc,
    process: child,
    close: async () => {
      if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill('SIGTERM')
      await child.exited
    }
  }
}
