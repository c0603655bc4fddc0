/**
 * Runs in the page (bundled by `bundle.ts`). Reads the server URL from the
 * query string (`?server=ws://127.0.0.1:PORT/`), runs the crypto checks of
 * @mls/crypto-noble and @mls/crypto-libsodium on suites 1 and 3, then the
 * four MLS flows over @mls/transport-ws with the page's own WebSocket, and
 * publishes the outcome as `window.__result` (one console line per check).
 * `&suites=1` narrows the suites; `&id=X` is appended to the user ids, so that
 * several page loads can share one server. `?probe=malformed` instead drives the transport client against a server
 * that sends malformed frames (see `malformed-probe.ts`).
 */
import { nobleCrypto } from '@mls/crypto-noble'
import { libsodiumCrypto } from '@mls/crypto-libsodium'
import type { CiphersuiteImpl } from '@mls/core/mls'
import { BROWSER_SUITES, checkInterop, checkProvider, checkUnsupported } from './crypto-checks.js'
import { runFourFlows } from './flows.js'
import { probeMalformedFrames } from './malformed-probe.js'
import { Checks, describeError, type FlowReport, type PageResult } from './result.js'

declare global {
  interface Window {
    __result?: PageResult
  }
}

function log(line: string): void {
  console.log(`[browser-tests] ${line}`)
  const out = document.getElementById('log')
  if (out !== null) out.textContent += `${line}\n`
}

/** Everything the page checks; the flows' reports are returned. */
async function run(checks: Checks, params: URLSearchParams): Promise<FlowReport[]> {
  const url = params.get('server')
  const suites = (params.get('suites') ?? '1,3').split(',').map(Number) as (keyof typeof BROWSER_SUITES)[]
  const flows: FlowReport[] = []
  if (!checks.check('?server= names the WebSocket server', url !== null) || url === null) return flows

  if (params.get('probe') === 'malformed') {
    await probeMalformedFrames(checks, url)
    return flows
  }

  for (const suite of suites) {
    if (!checks.check(`suite ${suite} is one of ${Object.keys(BROWSER_SUITES).join(', ')}`, BROWSER_SUITES[suite] !== undefined)) continue
    const noble = await checkProvider(checks, nobleCrypto(), suite)
    const sodium = await checkProvider(checks, libsodiumCrypto(), suite)
    if (noble !== undefined && sodium !== undefined) {
      const pair = (name: string, cs: CiphersuiteImpl) => ({ name, cs })
      await checkInterop(checks, pair('noble', noble), pair('libsodium', sodium), suite)
    }
  }
  await checkUnsupported(checks, libsodiumCrypto(), 'MLS_128_DHKEMP256_AES128GCM_SHA256_P256')

  for (const suite of suites) {
    const ciphersuite = BROWSER_SUITES[suite]
    if (ciphersuite === undefined) continue
    log(`four flows on suite ${suite} against ${url}: A and B on noble, C on libsodium`)
    flows.push(await runFourFlows(checks, { url, ciphersuite, suffix: `-s${suite}${params.get('id') ?? ''}`, providers: { a: nobleCrypto, b: nobleCrypto, c: libsodiumCrypto } }))
  }
  return flows
}

async function main(): Promise<void> {
  const started = performance.now()
  const checks = new Checks(log)
  const processType = typeof (globalThis as { process?: unknown }).process
  checks.check('a browser: no Node `process`, a global WebSocket, WebAssembly', processType === 'undefined' && typeof WebSocket === 'function' && typeof WebAssembly === 'object')
  let flows: FlowReport[] = []
  try {
    flows = await run(checks, new URLSearchParams(location.search))
  } catch (error) {
    checks.check('no unexpected error', false, describeError(error))
  }
  const result: PageResult = {
    ok: checks.ok,
    checks: checks.list,
    flows,
    environment: {
      userAgent: navigator.userAgent,
      process: processType,
      webAssembly: typeof WebAssembly === 'object',
      webSocket: typeof WebSocket === 'function',
      secureContext: isSecureContext,
      subtleCrypto: typeof (globalThis.crypto as Partial<Crypto> | undefined)?.subtle === 'object'
    },
    durationMs: Math.round(performance.now() - started)
  }
  log(`done: ${result.ok ? 'ALL OK' : 'FAILED'}, ${checks.list.filter((c) => c.ok).length}/${checks.list.length} checks in ${result.durationMs} ms`)
  window.__result = result
}

void main()
