// The README's code is copied from the examples, which the release rehearsal
// installs from the registry, type-checks and runs: a snippet that drifts from
// its example fails here.
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const REPOSITORY = fileURLToPath(new URL('../../../', import.meta.url))
const EXAMPLES = join(REPOSITORY, 'examples')

const lines = (text: string): string[] => text.split('\n').map((line) => line.trim())

/** Every .ts file of the examples, as trimmed lines. */
const examples = readdirSync(EXAMPLES, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && entry.name !== 'node_modules' && entry.name !== 'dist')
  .flatMap((folder) =>
    readdirSync(join(EXAMPLES, folder.name))
      .filter((file) => file.endsWith('.ts'))
      .map((file) => ({ path: `examples/${folder.name}/${file}`, lines: lines(readFileSync(join(EXAMPLES, folder.name, file), 'utf8')) }))
  )

function containsRun(haystack: string[], needle: string[]): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer
    return true
  }
  return false
}

describe('README snippets', () => {
  const readme = readFileSync(join(REPOSITORY, 'README.md'), 'utf8')
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => lines(match[1]!.trimEnd()))

  it('has TypeScript snippets', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(3)
  })

  for (const [index, block] of blocks.entries()) {
    it(`snippet ${index + 1} (${block[0]}) is a verbatim run of lines of an example`, () => {
      const source = examples.find((example) => containsRun(example.lines, block))
      expect(source?.path, block.join('\n')).toBeDefined()
    })
  }
})
