/** One check the page ran: `ok` false carries the reason in `detail`. */
export interface CheckResult {
  readonly name: string
  readonly ok: boolean
  readonly detail?: string
}

/** What one MLS client in the page did with its crypto provider. */
export interface ClientReport {
  readonly clientId: string
  /** `CryptoProvider.name` of the provider the client was given (`noble`, `libsodium`). */
  readonly provider: string
  readonly ciphersuite: string
  /** Calls the client made into its provider's ciphersuite implementation, in the page. */
  readonly calls: Readonly<Record<string, number>>
}

/** A run of the four flows on one ciphersuite. */
export interface FlowReport {
  readonly ciphersuite: string
  readonly clients: readonly ClientReport[]
  /** Epoch authenticator (hex) every member agreed on, per epoch. */
  readonly epochAuthenticators: Readonly<Record<string, string>>
}

/** `window.__result`, set once when the page is done. */
export interface PageResult {
  readonly ok: boolean
  readonly checks: readonly CheckResult[]
  readonly flows: readonly FlowReport[]
  readonly environment: {
    readonly userAgent: string
    /** `typeof process` in the page: `undefined` in a real browser. */
    readonly process: string
    readonly webAssembly: boolean
    readonly webSocket: boolean
    /** `isSecureContext`: false on plain http from a host other than localhost. */
    readonly secureContext: boolean
    /** Whether `crypto.subtle` (WebCrypto) exists: only in secure contexts. */
    readonly subtleCrypto: boolean
  }
  readonly durationMs: number
}

/** Records checks; `ok` is false once any failed. */
export class Checks {
  readonly list: CheckResult[] = []

  constructor(private readonly log: (line: string) => void = () => undefined) {}

  get ok(): boolean {
    return this.list.length > 0 && this.list.every((c) => c.ok)
  }

  check(name: string, ok: boolean, detail?: string): boolean {
    this.list.push(detail === undefined ? { name, ok } : { name, ok, detail })
    this.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail === undefined ? '' : ` (${detail})`}`)
    return ok
  }

  /** Run `fn` as one check: it passes when `fn` resolves without throwing. */
  async run(name: string, fn: () => Promise<void> | void): Promise<boolean> {
    try {
      await fn()
      return this.check(name, true)
    } catch (error) {
      return this.check(name, false, describeError(error))
    }
  }
}

export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code
    return `${error.name}${typeof code === 'string' ? ` ${code}` : ''}: ${error.message}`
  }
  return String(error)
}

/** Throw unless `condition` holds. */
export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message)
}
