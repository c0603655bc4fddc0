import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const SERVER_MAIN = fileURLToPath(new URL('../../server/dist/main.js', import.meta.url))

/** The real `apps/server` as a child process on a free port, resolved with its URL once it logged `server:started`. */
export async function startServerProcess(dataDir: string): Promise<{ url: string; stop(): Promise<void> }> {
  if (!existsSync(SERVER_MAIN)) throw new Error(`${SERVER_MAIN} is missing: run \`pnpm build\` (pnpm test does) first`)
  const child = spawn(process.execPath, [SERVER_MAIN, '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const record = JSON.parse(line) as { event?: string; url?: string }
        if (record.event === 'server:started') resolve(record.url!)
      } catch {
        // not a log line
      }
    })
    void exited.then(() => reject(new Error(`server exited before listening: ${stderr}`)))
  })
  return {
    url,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    }
  }
}
