/** A recognisable 200-byte value for `kind` at write `n`. */
export declare function valueOf(kind: string, n: number): Uint8Array
/** The log key of write `n`, ordered as numbers. */
export declare function logKey(n: number): string
