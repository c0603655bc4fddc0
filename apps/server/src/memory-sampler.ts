import { readFileSync } from 'node:fs'
import type { Logger } from './logger.js'

/** One `memory:sample` log line (bytes). */
export interface MemorySample {
  /** Resident set size of the process, before the GC. */
  readonly rss: number
  /** Resident set size after the GC. */
  readonly rssAfterGc: number
  /** JavaScript heap in use; after a full GC when `afterGc`. */
  readonly heapUsed: number
  readonly heapTotal: number
  /** Memory of C++ objects bound to JavaScript (Buffers, SQLite's handles). */
  readonly external: number
  readonly arrayBuffers: number
  /** True when node runs with `--expose-gc` and a full GC ran just before the sample. */
  readonly afterGc: boolean
  /** Linux only (`/proc/self/status`), after the GC: resident anonymous memory (heaps, malloc), file-backed pages (the node binary, mapped files) and shared memory. */
  readonly rssAnon?: number
  readonly rssFile?: number
  readonly rssShmem?: number
}

/** RssAnon, RssFile and RssShmem from `/proc/self/status`, in bytes; nothing where there is no such file. */
function residentParts(): { rssAnon?: number; rssFile?: number; rssShmem?: number } {
  let status: string
  try {
    status = readFileSync('/proc/self/status', 'utf8')
  } catch {
    return {}
  }
  const kib = (name: string): number | undefined => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)
    return match === null ? undefined : Number(match[1]) * 1024
  }
  const parts = { rssAnon: kib('RssAnon'), rssFile: kib('RssFile'), rssShmem: kib('RssShmem') }
  return Object.fromEntries(Object.entries(parts).filter(([, value]) => value !== undefined))
}

/** Take one sample: a full GC first when node exposes it (`--expose-gc`), so `heapUsed` is what is still reachable. */
export function sampleMemory(): MemorySample {
  const gc = (globalThis as { gc?: () => void }).gc
  const rss = process.memoryUsage.rss()
  gc?.()
  const { rss: rssAfterGc, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage()
  return { rss, rssAfterGc, heapUsed, heapTotal, external, arrayBuffers, afterGc: gc !== undefined, ...residentParts() }
}

/**
 * Diagnostic for soak runs (docs/server.md): log a `memory:sample` line every
 * `intervalMs` (env `MLS_MEMORY_SAMPLE_MS`). Returns the stop function.
 */
export function startMemorySampler(intervalMs: number, logger: Logger): () => void {
  const timer = setInterval(() => logger.info('memory:sample', { ...sampleMemory() }), intervalMs)
  timer.unref()
  logger.info('memory:sample', { ...sampleMemory() })
  return () => clearInterval(timer)
}
