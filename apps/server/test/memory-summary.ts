/** A `memory:sample` log line of the server process (apps/server/src/memory-sampler.ts), with its time. */
export interface TimedSample {
  /** Milliseconds since the epoch. */
  readonly at: number
  readonly rss: number
  readonly heapUsed: number
  /** Memory of C++ objects bound to JavaScript (Buffers among them); 0 when not sampled. */
  readonly external?: number
  /** Linux: resident anonymous memory (heaps, malloc) and file-backed pages (the node binary, mapped files). */
  readonly rssAnon?: number
  readonly rssFile?: number
}

/** Start, peak and end of one measure, and its least-squares slope over the last half of the run. */
export interface MeasureSummary {
  readonly start: number
  readonly peak: number
  readonly end: number
  /** Bytes per minute over the samples of the last half of the run (by time). */
  readonly slopeLastHalfPerMinute: number
}

export interface MemorySummary {
  readonly samples: number
  readonly seconds: number
  readonly heapUsed: MeasureSummary
  readonly rss: MeasureSummary
  readonly external: MeasureSummary
  /** When sampled (Linux). */
  readonly rssAnon?: MeasureSummary
  readonly rssFile?: MeasureSummary
}

function slope(points: readonly { x: number; y: number }[]): number {
  if (points.length < 2) return 0
  const n = points.length
  const mx = points.reduce((s, p) => s + p.x, 0) / n
  const my = points.reduce((s, p) => s + p.y, 0) / n
  let num = 0
  let den = 0
  for (const p of points) {
    num += (p.x - mx) * (p.y - my)
    den += (p.x - mx) ** 2
  }
  return den === 0 ? 0 : num / den
}

/** Summarize samples (in time order; at least one). */
export function summarizeMemory(samples: readonly TimedSample[]): MemorySummary {
  if (samples.length === 0) throw new Error('no memory samples')
  const first = samples[0]!.at
  const last = samples.at(-1)!.at
  const middle = first + (last - first) / 2
  const measure = (pick: (s: TimedSample) => number): MeasureSummary => ({
    start: pick(samples[0]!),
    peak: Math.max(...samples.map(pick)),
    end: pick(samples.at(-1)!),
    slopeLastHalfPerMinute: slope(samples.filter((s) => s.at >= middle).map((s) => ({ x: (s.at - first) / 60_000, y: pick(s) })))
  })
  return { samples: samples.length, seconds: (last - first) / 1000, heapUsed: measure((s) => s.heapUsed),
    rss: measure((s) => s.rss),
    external: measure((s) => s.external ?? 0),
    ...(samples.every((s) => s.rssAnon !== undefined && s.rssFile !== undefined)
      ? { rssAnon: measure((s) => s.rssAnon ?? 0), rssFile: measure((s) => s.rssFile ?? 0) }
      : {})
  }
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`

/** The summary as the lines `pnpm soak` prints. */
export function formatMemory(summary: MemorySummary): string[] {
  const line = (name: string, m: MeasureSummary) =>
    `soak: server ${name}: start ${mib(m.start)}, peak ${mib(m.peak)}, end ${mib(m.end)}; slope over the last half ${(m.slopeLastHalfPerMinute / 2 ** 20).toFixed(2)} MiB/min`
  return [
    `soak: ${summary.samples} server memory samples over ${summary.seconds.toFixed(0)} s`,
    line('heapUsed after GC', summary.heapUsed),
    line('rss', summary.rss),
    line('external (Buffers) after GC', summary.external),
    ...(summary.rssAnon === undefined ? [] : [line('rss anonymous (heaps, malloc) after GC', summary.rssAnon)]),
    ...(summary.rssFile === undefined ? [] : [line('rss file-backed (node binary, mapped files)', summary.rssFile)])
  ]
}
