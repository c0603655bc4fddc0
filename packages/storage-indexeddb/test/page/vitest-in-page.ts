/**
 * The part of vitest's API that `@mls/conformance/storage` uses, for a page in
 * Chromium: `describe`, `it`, `beforeEach`/`afterEach`/`beforeAll`/`afterAll`
 * collect tests, `runCollected()` runs them in order; `expect` is vitest's own
 * (`@vitest/expect` on chai, as vitest builds it). The page bundle maps the
 * `vitest` import to this module.
 */
import * as chai from 'chai'
import { GLOBAL_EXPECT, JestAsymmetricMatchers, JestChaiExpect, JestExtend, getState, setState } from '@vitest/expect'

chai.use(JestExtend)
chai.use(JestChaiExpect)
chai.use(JestAsymmetricMatchers)

type ExpectFunction = ((value: unknown, message?: string) => Chai.Assertion) & Record<string, unknown>

function createExpect(): ExpectFunction {
  const expect = ((value: unknown, message?: string) => {
    const { assertionCalls } = getState(expect as never) as { assertionCalls: number }
    setState({ assertionCalls: assertionCalls + 1 }, expect as never)
    return chai.expect(value, message)
  }) as ExpectFunction
  Object.assign(expect, chai.expect)
  setState({ assertionCalls: 0, isExpectingAssertions: false, expectedAssertionsNumber: null }, expect as never)
  ;(globalThis as Record<symbol, unknown>)[GLOBAL_EXPECT] = expect
  return expect
}

export const expect = createExpect()

type Hook = () => unknown
interface Suite {
  readonly name: string
  readonly parent: Suite | undefined
  readonly beforeEach: Hook[]
  readonly afterEach: Hook[]
  readonly beforeAll: Hook[]
  readonly afterAll: Hook[]
}

interface CollectedTest {
  readonly name: string
  readonly suite: Suite
  readonly fn: Hook
}

/** One test's outcome. */
export interface TestResult {
  readonly name: string
  readonly ok: boolean
  readonly error?: string
  readonly assertions: number
  readonly ms: number
}

const root: Suite = { name: '', parent: undefined, beforeEach: [], afterEach: [], beforeAll: [], afterAll: [] }
let current: Suite = root
const tests: CollectedTest[] = []

export function describe(name: string, body: () => void): void {
  const suite: Suite = { name, parent: current, beforeEach: [], afterEach: [], beforeAll: [], afterAll: [] }
  const outer = current
  current = suite
  try {
    body()
  } finally {
    current = outer
  }
}

export function it(name: string, fn: Hook): void {
  tests.push({ name, suite: current, fn })
}
export const test = it

export const beforeEach = (fn: Hook): void => void current.beforeEach.push(fn)
export const afterEach = (fn: Hook): void => void current.afterEach.push(fn)
export const beforeAll = (fn: Hook): void => void current.beforeAll.push(fn)
export const afterAll = (fn: Hook): void => void current.afterAll.push(fn)

function chain(suite: Suite): Suite[] {
  const out: Suite[] = []
  for (let s: Suite | undefined = suite; s !== undefined; s = s.parent) out.unshift(s)
  return out
}

function fullName(t: CollectedTest): string {
  return [...chain(t.suite).map((s) => s.name), t.name].filter((n) => n !== '').join(' > ')
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code
    return `${error.name}${typeof code === 'string' ? ` ${code}` : ''}: ${error.message}`
  }
  return String(error)
}

/** Run every collected test in order (hooks outermost first, `afterEach` innermost first). */
export async function runCollected(log: (line: string) => void = () => undefined): Promise<TestResult[]> {
  const results: TestResult[] = []
  const started = new Set<Suite>()
  for (const t of tests) {
    const suites = chain(t.suite)
    const began = performance.now()
    setState({ assertionCalls: 0 }, expect as never)
    let error: unknown
    try {
      for (const s of suites) {
        if (!started.has(s)) {
          started.add(s)
          for (const hook of s.beforeAll) await hook()
        }
      }
      for (const s of suites) for (const hook of s.beforeEach) await hook()
      await t.fn()
    } catch (failure) {
      error = failure
    }
    for (const s of [...suites].reverse()) {
      for (const hook of s.afterEach) {
        try {
          await hook()
        } catch (failure) {
          error ??= failure
        }
      }
    }
    const assertions = (getState(expect as never) as { assertionCalls: number }).assertionCalls
    const result: TestResult = { name: fullName(t), ok: error === undefined, assertions, ms: Math.round(performance.now() - began), ...(error === undefined ? {} : { error: describeError(error) }) }
    results.push(result)
    log(`${result.ok ? 'ok  ' : 'FAIL'} ${result.name}${result.error === undefined ? '' : ` (${result.error})`}`)
  }
  for (const s of [...started].reverse()) for (const hook of s.afterAll) await hook()
  return results
}
