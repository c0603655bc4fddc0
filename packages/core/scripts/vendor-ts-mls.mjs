#!/usr/bin/env node
/**
 * Regenerate core's patched copies of ts-mls modules (docs/ts-mls-fixes.md).
 *
 *   node packages/core/scripts/vendor-ts-mls.mjs          write src/vendor/ts-mls/
 *   node packages/core/scripts/vendor-ts-mls.mjs --check  exit 1 if the committed copies differ
 *
 * Inputs:
 * - ts-mls's published `dist/src/*.js`, of exactly the version core pins;
 * - `patches/ts-mls/*.patch`, unified diffs against `dist/src/<module>.js`,
 *   applied in file-name order (several patches may touch the same module);
 * - `patches/ts-mls/modules.json` `{ "importers": ["processMessages.js", ...] }`:
 *   unpatched modules that must still be vendored because they import a
 *   patched one on a path core calls (they are copied so that their import
 *   reaches the patched copy instead of ts-mls's own).
 *
 * Each vendored module is written as `src/vendor/ts-mls/<module>.ts` (the
 * JavaScript text under `// @ts-nocheck`, so `tsc` emits it into dist with the
 * rest of core). Its relative imports of vendored modules stay relative; every
 * other relative import becomes the `ts-mls/<module>.js` subpath import that
 * ts-mls's export map allows, so the copy shares every other module instance
 * (error classes, codecs) with the installed ts-mls.
 */
import { readFileSync, writeFileSync, readdirSync, mkdirSync, rmSync, existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, posix, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const coreDir = join(dirname(fileURLToPath(import.meta.url)), '..')
const patchDir = join(coreDir, 'patches', 'ts-mls')
const vendorDir = join(coreDir, 'src', 'vendor', 'ts-mls')

function fail(message) {
  console.error(`vendor-ts-mls: ${message}`)
  process.exit(1)
}

const tsMlsEntry = createRequire(join(coreDir, 'package.json')).resolve('ts-mls')
const tsMlsSource = dirname(tsMlsEntry) // .../ts-mls/dist/src
const tsMlsRoot = join(tsMlsSource, '..', '..')
const installed = JSON.parse(readFileSync(join(tsMlsRoot, 'package.json'), 'utf8')).version
const pinned = JSON.parse(readFileSync(join(coreDir, 'package.json'), 'utf8')).dependencies['ts-mls']
if (installed !== pinned) fail(`core pins ts-mls ${pinned} but ${installed} is installed`)

/** Parse a unified diff into per-file hunks. */
function parsePatch(text, name) {
  const files = []
  let file
  let hunk
  for (const line of text.split('\n')) {
    if (line.startsWith('--- ')) continue
    if (line.startsWith('+++ ')) {
      const path = line.slice(4).trim().replace(/^b\//, '')
      if (!path.startsWith('dist/src/')) fail(`${name}: ${path} is not under dist/src/`)
      file = { module: path.slice('dist/src/'.length), hunks: [] }
      files.push(file)
      hunk = undefined
      continue
    }
    const header = /^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@/.exec(line)
    if (header !== null) {
      if (file === undefined) fail(`${name}: hunk before a file header`)
      hunk = { start: Number(header[1]), old: [], new: [] }
      file.hunks.push(hunk)
      continue
    }
    if (hunk === undefined) continue
    if (line.startsWith(' ')) {
      hunk.old.push(line.slice(1))
      hunk.new.push(line.slice(1))
    } else if (line.startsWith('-')) hunk.old.push(line.slice(1))
    else if (line.startsWith('+')) hunk.new.push(line.slice(1))
    else if (line === '' || line.startsWith('\\')) continue
    else fail(`${name}: unexpected line ${JSON.stringify(line)}`)
  }
  return files
}

/** Apply hunks exactly (context must match); a hunk may have moved, never fuzzily. */
function applyHunks(text, hunks, name) {
  const lines = text.split('\n')
  let offset = 0
  for (const hunk of hunks) {
    const expected = hunk.start - 1 + offset
    const matchesAt = (at) => hunk.old.every((l, k) => lines[at + k] === l)
    let at = -1
    for (let distance = 0; distance < lines.length && at < 0; distance++) {
      if (expected - distance >= 0 && matchesAt(expected - distance)) at = expected - distance
      else if (distance > 0 && matchesAt(expected + distance)) at = expected + distance
    }
    if (at < 0) fail(`${name}: hunk at line ${hunk.start} does not apply to ts-mls ${installed}`)
    lines.splice(at, hunk.old.length, ...hunk.new)
    offset = at - (hunk.start - 1) + hunk.new.length - hunk.old.length
  }
  return lines.join('\n')
}

const patchNames = existsSync(patchDir) ? readdirSync(patchDir).filter((f) => f.endsWith('.patch')).sort() : []
const modulesConfigPath = join(patchDir, 'modules.json')
const importers = existsSync(modulesConfigPath) ? (JSON.parse(readFileSync(modulesConfigPath, 'utf8')).importers ?? []) : []

/** module path (relative to dist/src, with .js) → { text, patches } */
const vendored = new Map()
const load = (module) => {
  let entry = vendored.get(module)
  if (entry === undefined) {
    const path = join(tsMlsSource, module)
    if (!existsSync(path)) fail(`ts-mls ${installed} has no dist/src/${module}`)
    entry = { text: readFileSync(path, 'utf8'), patches: [] }
    vendored.set(module, entry)
  }
  return entry
}
for (const name of patchNames) {
  for (const file of parsePatch(readFileSync(join(patchDir, name), 'utf8'), name)) {
    const entry = load(file.module)
    entry.text = applyHunks(entry.text, file.hunks, name)
    entry.patches.push(name)
  }
}
for (const module of importers) load(module)

/** The relative imports of a ts-mls dist module, as module paths relative to dist/src. */
function importsOf(module, text) {
  const from = posix.dirname(module)
  return [...text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)].map((m) => posix.normalize(posix.join(from, m[1])))
}

// Every module that reaches a vendored one through its imports is vendored too, so that no path through
// ts-mls ends in an unpatched copy of a patched function or of a value built from one at load time
// (`ratchetTreeEncoder` is `varLenTypeEncoder(...)` evaluated when ratchetTree.js loads).
const allModules = readdirSync(tsMlsSource, { recursive: true })
  .map((f) => String(f).split('\\').join('/'))
  .filter((f) => f.endsWith('.js'))
const importGraph = new Map(allModules.map((m) => [m, importsOf(m, readFileSync(join(tsMlsSource, m), 'utf8'))]))
for (let grew = true; grew; ) {
  grew = false
  for (const [module, targets] of importGraph) {
    if (!vendored.has(module) && targets.some((t) => vendored.has(t))) {
      load(module)
      grew = true
    }
  }
}

function rewriteImports(module, text) {
  const from = posix.dirname(module)
  return text.replace(/((?:from|import)\s*\(?\s*)"(\.{1,2}\/[^"]+)"/g, (_match, prefix, specifier) => {
    const target = posix.normalize(posix.join(from, specifier))
    if (vendored.has(target)) return `${prefix}"${specifier}"`
    return `${prefix}"ts-mls/${target}"`
  })
}

const outputs = new Map()
for (const [module, entry] of [...vendored.entries()].sort(([a], [b]) => a.localeCompare(b))) {
  const body = rewriteImports(module, entry.text).replace(/\n\/\/# sourceMappingURL=.*\n?$/, '\n')
  const header = [
    '// @ts-nocheck',
    `// Generated by packages/core/scripts/vendor-ts-mls.mjs from ts-mls@${installed} dist/src/${module}`,
    `// with ${entry.patches.length === 0 ? 'no patch (it imports a vendored module)' : `patches/ts-mls/${entry.patches.join(', patches/ts-mls/')}`}.`,
    '// Do not edit: change the patch and regenerate. See docs/ts-mls-fixes.md.',
    ''
  ].join('\n')
  outputs.set(module.replace(/\.js$/, '.ts'), header + body)
}

function listFiles(dir) {
  if (!existsSync(dir)) return []
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((d) => d.isFile())
    .map((d) => relative(dir, join(d.parentPath ?? d.path, d.name)).split('\\').join('/'))
}

if (process.argv.includes('--check')) {
  const problems = []
  for (const [file, text] of outputs) {
    const path = join(vendorDir, file)
    if (!existsSync(path)) problems.push(`missing ${file}`)
    else if (readFileSync(path, 'utf8') !== text) problems.push(`${file} differs from its regeneration`)
  }
  for (const file of listFiles(vendorDir)) if (!outputs.has(file)) problems.push(`stale ${file}`)
  if (problems.length > 0) fail(`src/vendor/ts-mls is out of date (run node packages/core/scripts/vendor-ts-mls.mjs): ${problems.join('; ')}`)
  console.log(`vendor-ts-mls: ${outputs.size} module(s) up to date with ts-mls ${installed} and ${patchNames.length} patch(es)`)
} else {
  rmSync(vendorDir, { recursive: true, force: true })
  for (const [file, text] of outputs) {
    mkdirSync(dirname(join(vendorDir, file)), { recursive: true })
    writeFileSync(join(vendorDir, file), text)
  }
  console.log(`vendor-ts-mls: wrote ${outputs.size} module(s) from ts-mls ${installed} and ${patchNames.length} patch(es)`)
}
