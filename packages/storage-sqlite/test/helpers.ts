import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A fresh temporary folder; remove it with `removeDir`. */
export function tempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `mls-storage-sqlite-${label}-`))
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
}

/** Every byte of a database on disk: the main file, its WAL, its shared-memory index and its rollback journal (missing files count as empty). */
export function fileBytes(path: string): Uint8Array {
  const parts: Buffer[] = []
  for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    try {
      parts.push(readFileSync(file))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
  }
  return new Uint8Array(Buffer.concat(parts))
}
