// `pnpm --filter @mls/release-rehearsal measure`: publish every public
// package to a local verdaccio (as the rehearsal does), then install each one
// alone into a fresh project, with npm and with pnpm, and print its packed
// size and install time as a Markdown table (for docs/release.md). A
// measurement, not a test: nothing is asserted. Package names given as
// arguments (`measure @mls/contracts @mls/storage-memory`) limit the table to them.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runOk } from './processes.js'
import { startRegistry } from './registry.js'

const repository = fileURLToPath(new URL('../../../', import.meta.url))
const published = readdirSync(join(repository, 'packages'))
  .map((name) => join(repository, 'packages', name, 'package.json'))
  .filter((file) => existsSync(file))
  .map((file) => JSON.parse(readFileSync(file, 'utf8')) as { name: string; version: string; private?: boolean; peerDependencies?: Record<string, string> })
  .filter((manifest) => manifest.private !== true)
  .filter((manifest) => process.argv.length <= 2 || process.argv.slice(2).includes(manifest.name))

const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(npm_|pnpm_)/i.test(key)))
const nodedir = execFileSync('npm', ['config', 'get', 'nodedir'], { cwd: tmpdir(), env, encoding: 'utf8' }).trim()
if (nodedir !== '' && nodedir !== 'undefined' && nodedir !== 'null') env.npm_config_nodedir = nodedir

const root = mkdtempSync(join(tmpdir(), 'mls-measure-'))
mkdirSync(join(root, 'registry'))
const registry = await startRegistry(join(root, 'registry'), 'https://registry.npmjs.org/')
try {
  const userconfig = join(root, 'publish.npmrc')
  writeFileSync(userconfig, `${registry.npmrc}git-checks=false\n`)
  await runOk('pnpm', ['exec', 'changeset', 'publish', '--no-git-tag'], { cwd: repository, env: { ...env, NPM_CONFIG_USERCONFIG: userconfig, npm_config_registry: registry.url } })
  const rows: string[] = ['| package | packed | npm install | pnpm install |', '| --- | --- | --- | --- |']
  for (const { name, version, peerDependencies = {} } of published) {
    const metadata = (await (await fetch(`${registry.url}${name.replace('/', '%2f')}`)).json()) as { versions: Record<string, { dist: { tarball: string } }> }
    const tarball = metadata.versions[version]!.dist.tarball.replace(/^http:\/\/[^/]+\//, registry.url)
    const packed = (await (await fetch(tarball)).arrayBuffer()).byteLength
    const times: string[] = []
    for (const manager of ['npm', 'pnpm'] as const) {
      const project = join(root, `${manager}-${name.replace('/', '-')}`)
      mkdirSync(project)
      // The package and the @mls peers it needs, as a user would list them.
      const dependencies: Record<string, string> = { [name]: version }
      for (const peer of Object.keys(peerDependencies)) if (peer.startsWith('@mls/')) dependencies[peer] = version
      writeFileSync(
        join(project, 'package.json'),
        JSON.stringify({ name: 'measure', private: true, type: 'module', dependencies, pnpm: { onlyBuiltDependencies: ['better-sqlite3'] } })
      )
      writeFileSync(join(project, '.npmrc'), registry.npmrc)
      const result = await runOk(manager, manager === 'npm' ? ['install', '--no-audit', '--no-fund'] : ['install', '--no-frozen-lockfile'], {
        cwd: project,
        env,
        timeoutMs: 10 * 60_000
      })
      times.push(`${(result.milliseconds / 1000).toFixed(1)} s`)
    }
    rows.push(`| \`${name}\` | ${(packed / 1024).toFixed(1)} KiB | ${times[0]} | ${times[1]} |`)
    console.error(rows.at(-1))
  }
  console.log(rows.join('\n'))
} finally {
  await registry.close()
  rmSync(root, { recursive: true, force: true })
}
