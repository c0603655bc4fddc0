// The release rehearsal: what a user installs, tried as a user would.
//
// Every public package is published with changesets to a verdaccio registry on
// loopback (other packages are proxied to the npm registry), then installed
// into fresh projects outside the workspace, once with npm and once with pnpm.
// There the examples (examples/) are type-checked strictly (NodeNext,
// skipLibCheck: false), bundled for the browser with esbuild and run: a server
// of one's own on SQLite, two processes chatting through the real apps/server
// process, the browser client in Chromium. `@mls/cli` is installed globally
// with npm, and two `mls-chat` processes talk through the server. A last pnpm
// project without an allowed better-sqlite3 build shows the error a user then
// gets. Two more (npm, pnpm) install a store and the WebSocket client alone and
// show that neither @mls/core nor ts-mls is in their installed tree.
//
// Time budget: about 1 to 3 minutes on 2 cores. better-sqlite3's prebuilt
// binary comes from a loopback mirror of the one the workspace built (GitHub,
// where users' installs fetch it, is out of reach here); without it npm would
// compile it from source for minutes.
import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runOk, start, startRegistry, serveFiles, type LocalRegistry, type StartedProcess } from '../src/index.js'

const REPOSITORY = fileURLToPath(new URL('../../../', import.meta.url))
const EXAMPLES = join(REPOSITORY, 'examples')
const SERVER_MAIN = join(REPOSITORY, 'apps', 'server', 'dist', 'main.js')
const ENSURE_CHROMIUM = join(REPOSITORY, 'scripts', 'ensure-chromium.mjs')
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const MINUTE = 60_000

/** The packages a release publishes: every non-private package of the workspace. */
const published = ['packages', 'apps'].flatMap((folder) =>
  readdirSync(join(REPOSITORY, folder))
    .map((name) => join(REPOSITORY, folder, name, 'package.json'))
    .filter((file) => existsSync(file))
    .map((file) => JSON.parse(readFileSync(file, 'utf8')) as { name: string; version: string; private?: boolean })
    .filter((manifest) => manifest.private !== true)
)

/** The environment of a user's shell: none of the variables the outer pnpm/vitest set for its scripts. */
function userEnvironment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_|pnpm_|vitest|turbo_)/i.test(key) || ['INIT_CWD', 'NODE_ENV', 'NODE_OPTIONS', 'TEST', 'VITEST'].includes(key)) continue
    env[key] = value
  }
  return { ...env, ...extra }
}

function npmConfig(key: string): string | undefined {
  const value = execFileSync('npm', ['config', 'get', key], { cwd: tmpdir(), env: userEnvironment(), encoding: 'utf8' }).trim()
  return value === '' || value === 'undefined' || value === 'null' ? undefined : value
}

let root: string
let registry: LocalRegistry | undefined
let prebuilds: { url: string; close(): Promise<void> } | undefined
/** Install-time environment additions: where better-sqlite3's install script fetches its prebuilt binary. */
let prebuildEnvironment: Record<string, string> = {}
const running = new Set<StartedProcess>()
const report: string[] = []

function background(command: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv, stdin = false): StartedProcess {
  const child = start(command, args, { cwd, env, stdin })
  running.add(child)
  void child.exited.then(() => running.delete(child))
  return child
}

/** Start the real server process (what `pnpm start` runs) on a free port; resolve with it and its URL. */
async function startAppServer(dataDir: string): Promise<{ server: StartedProcess; url: string }> {
  const server = background(process.execPath, [SERVER_MAIN, '--port', '0', '--data-dir', dataDir], REPOSITORY, userEnvironment())
  const [, url] = await server.waitFor(/"event":"server:started".*?"url":"([^"]+)"/, MINUTE)
  return { server, url: url! }
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'mls-release-rehearsal-'))
  mkdirSync(join(root, 'registry'))
  registry = await startRegistry(join(root, 'registry'), npmConfig('registry') ?? 'https://registry.npmjs.org/')
  // Never publish anywhere but the loopback registry.
  expect(registry.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
  const userconfig = join(root, 'publish.npmrc')
  writeFileSync(userconfig, `${registry.npmrc}git-checks=false\n`)
  const publish = await runOk('pnpm', ['exec', 'changeset', 'publish', '--no-git-tag'], {
    cwd: REPOSITORY,
    env: userEnvironment({ NPM_CONFIG_USERCONFIG: userconfig, npm_config_registry: registry.url }),
    timeoutMs: 5 * MINUTE
  })
  report.push(`changeset publish: ${publish.milliseconds} ms`)

  // better-sqlite3's install script (prebuild-install) downloads a prebuilt
  // binary from GitHub, which these machines cannot reach: it would compile
  // from source (minutes on 2 cores). Serve it the binary the workspace built,
  // from a loopback mirror, in the file layout of its releases.
  const sqliteRequire = createRequire(join(REPOSITORY, 'packages', 'storage-sqlite', 'package.json'))
  const sqliteDir = dirname(sqliteRequire.resolve('better-sqlite3/package.json'))
  const sqliteVersion = (JSON.parse(readFileSync(join(sqliteDir, 'package.json'), 'utf8')) as { version: string }).version
  const mirror = join(root, 'prebuilds')
  mkdirSync(join(mirror, `v${sqliteVersion}`), { recursive: true })
  const asset = `better-sqlite3-v${sqliteVersion}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`
  execFileSync('tar', ['-czf', join(mirror, `v${sqliteVersion}`, asset), '-C', sqliteDir, 'build/Release/better_sqlite3.node'])
  prebuilds = await serveFiles(mirror)
  prebuildEnvironment = { npm_config_better_sqlite3_binary_host: prebuilds.url.replace(/\/$/, '') }
}, 8 * MINUTE)

afterAll(async () => {
  for (const child of running) child.child.kill('SIGKILL')
  await registry?.close()
  await prebuilds?.close()
  if (root !== undefined) rmSync(root, { recursive: true, force: true })
  console.log(`release rehearsal\n${report.join('\n')}`)
}, MINUTE)

describe('release rehearsal: publish', () => {
  it('published every public package, with concrete versions instead of workspace: ranges, a README and a LICENSE', async () => {
    expect(published.length).toBeGreaterThan(5)
    for (const { name, version } of published) {
      const response = await fetch(`${registry!.url}${name.replace('/', '%2f')}`)
      expect(response.status, name).toBe(200)
      const metadata = (await response.json()) as { versions: Record<string, Record<string, unknown> & { dist: { tarball: string } }> }
      const manifest = metadata.versions[version]
      expect(manifest, `${name}@${version}`).toBeDefined()
      expect(JSON.stringify(manifest), name).not.toContain('workspace:')
      const tarball = await fetch(manifest!.dist.tarball.replace(/^http:\/\/[^/]+\//, registry!.url))
      const content = Buffer.from(await tarball.arrayBuffer())
      const bytes = content.byteLength
      const file = join(root, `${name.replace('/', '-')}.tgz`)
      writeFileSync(file, content)
      const files = execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).split('\n')
      expect(files, name).toEqual(expect.arrayContaining(['package/LICENSE', 'package/README.md', 'package/package.json']))
      report.push(`packed ${name}@${version}: ${(bytes / 1024).toFixed(1)} KiB`)
    }
  })
})

for (const manager of ['npm', 'pnpm'] as const) {
  describe(`release rehearsal: installed with ${manager}`, () => {
    let project: string
    let env: NodeJS.ProcessEnv

    beforeAll(async () => {
      project = join(root, `${manager}-project`)
      cpSync(EXAMPLES, project, { recursive: true, filter: (source) => !/[/\\](node_modules|dist)$/.test(source) })
      // The examples name the released versions; pin them to what this tree publishes.
      const manifestPath = join(project, 'package.json')
      const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { dependencies: Record<string, string> }
      for (const { name, version } of published) if (name in manifest.dependencies) manifest.dependencies[name] = version
      writeFileSync(manifestPath, JSON.stringify(manifest, null, 2))
      writeFileSync(join(project, '.npmrc'), registry!.npmrc)
      const nodedir = npmConfig('nodedir')
      env = userEnvironment({ ...prebuildEnvironment, ...(nodedir === undefined ? {} : { npm_config_nodedir: nodedir }) })
      const install = await runOk(manager, manager === 'npm' ? ['install', '--no-audit', '--no-fund'] : ['install', '--no-frozen-lockfile'], {
        cwd: project,
        env,
        timeoutMs: 10 * MINUTE
      })
      report.push(`${manager} install of the examples: ${(install.milliseconds / 1000).toFixed(1)} s`)
    }, 11 * MINUTE)

    it('type-checks the examples (strict, NodeNext, skipLibCheck: false) and bundles the browser example with esbuild', async () => {
      const tsconfig = JSON.parse(readFileSync(join(project, 'tsconfig.json'), 'utf8')) as { compilerOptions: Record<string, unknown> }
      expect(tsconfig.compilerOptions).toMatchObject({ strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', skipLibCheck: false })
      await runOk(manager, ['run', 'build'], { cwd: project, env, timeoutMs: 3 * MINUTE })
      const bundle = readFileSync(join(project, 'dist', 'browser', 'bundle.js'), 'utf8')
      expect(bundle).toContain('hello from the browser')
      // The client entry of @mls/transport-ws never pulls `ws` (or any Node built-in) into a browser bundle.
      expect(bundle).not.toMatch(/from ["']node:|require\(["'](ws|node:)/)
    }, 4 * MINUTE)

    it('runs a server of its own on SQLite, exchanges a message and exits by itself', async () => {
      const dataDir = join(root, `${manager}-own-server`)
      mkdirSync(dataDir)
      const result = await runOk(process.execPath, ['dist/own-server/own-server.js', dataDir], { cwd: project, env, timeoutMs: 2 * MINUTE })
      expect(result.stdout).toMatch(/server: listening on ws:\/\/127\.0\.0\.1:\d+/)
      expect(result.stdout).toContain('bob <- hello from alice')
      expect(result.stdout).toContain('server: stopped')
      expect(existsSync(join(dataDir, 'server.sqlite'))).toBe(true)
    }, 3 * MINUTE)

    it('chats between two processes through the real server process; alice starts first and waits for bob', async () => {
      const { server, url } = await startAppServer(join(root, `${manager}-server-data`))
      const chatEnv = { ...env, MLS_URL: url, MLS_CHAT_DIR: project }
      // alice before bob: her first addUsers gets UNKNOWN_USER and she retries until bob has published KeyPackages.
      const alice = background(process.execPath, ['dist/chat/chat.js', 'alice', 'bob'], project, chatEnv)
      await alice.waitFor(/alice: ready/, MINUTE)
      const bob = background(process.execPath, ['dist/chat/chat.js', 'bob'], project, chatEnv)
      const [aliceExit, bobExit] = await Promise.all([alice.exited, bob.exited])
      expect({ exit: aliceExit.code, output: alice.output() }).toMatchObject({ exit: 0 })
      expect({ exit: bobExit.code, output: bob.output() }).toMatchObject({ exit: 0 })
      expect(bob.output()).toContain('bob <- alice/laptop: hello bob')
      expect(alice.output()).toContain('alice <- bob/laptop: hi, this is bob')
      server.child.kill('SIGTERM')
      expect((await server.exited).code).toBe(0)
    }, 3 * MINUTE)

    if (manager === 'npm') {
      it('runs the bundled browser client in Chromium against the real server process', async () => {
        execFileSync(process.execPath, [ENSURE_CHROMIUM], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 15 * MINUTE })
        const { server, url } = await startAppServer(join(root, 'browser-server-data'))
        const files = await serveFiles(project)
        const profile = mkdtempSync(join(tmpdir(), 'mls-rehearsal-chromium-'))
        const context = await chromium.launchPersistentContext(profile, {
          executablePath: CHROMIUM,
          headless: true,
          timeout: MINUTE,
          args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
        })
        try {
          const page = await context.newPage()
          const errors: string[] = []
          page.on('pageerror', (error) => errors.push(error.message))
          await page.goto(`${files.url}browser/index.html?server=${encodeURIComponent(url)}`)
          await page.waitForFunction(() => document.title !== 'running', undefined, { timeout: 2 * MINUTE, polling: 100 })
          expect({ title: await page.title(), output: await page.textContent('#output'), errors }).toMatchObject({
            title: 'ok: hello from the browser',
            errors: []
          })
        } finally {
          await context.close()
          await files.close()
          rmSync(profile, { recursive: true, force: true })
          server.child.kill('SIGTERM')
          await server.exited
        }
      }, 16 * MINUTE)
    }
  })
}

describe('release rehearsal: @mls/cli installed globally with npm', () => {
  it('installs the mls-chat bin, prints its help, and two chats talk through the real server process', async () => {
    const prefix = join(root, 'npm-global')
    const home = join(root, 'cli-home')
    mkdirSync(home)
    const userconfig = join(root, 'install.npmrc')
    writeFileSync(userconfig, registry!.npmrc)
    const nodedir = npmConfig('nodedir')
    const env = userEnvironment({
      ...prebuildEnvironment,
      ...(nodedir === undefined ? {} : { npm_config_nodedir: nodedir }),
      NPM_CONFIG_USERCONFIG: userconfig,
      HOME: home
    })
    const version = published.find((manifest) => manifest.name === '@mls/cli')?.version
    expect(version, '@mls/cli is published').toBeDefined()
    const install = await runOk('npm', ['install', '--global', '--prefix', prefix, '--no-audit', '--no-fund', `@mls/cli@${version!}`], {
      cwd: home,
      env,
      timeoutMs: 10 * MINUTE
    })
    report.push(`npm install -g @mls/cli: ${(install.milliseconds / 1000).toFixed(1)} s`)
    const bin = join(prefix, 'bin', 'mls-chat')
    const help = await runOk(bin, ['--help'], { cwd: home, env })
    expect(help.stdout).toMatch(/^Usage: mls-chat --user <id>/)

    // A short real run: bob waits, alice creates a group, invites him and says hello; lines go in on stdin.
    const { server, url } = await startAppServer(join(root, 'cli-server-data'))
    const chat = (user: string, device: string): StartedProcess =>
      background(bin, ['--user', user, '--device', device, '--server', url, '--data-dir', join(home, 'chat-data')], home, env, true)
    const bob = chat('bob', 'phone')
    await bob.waitFor(/^ready\./m, MINUTE)
    const alice = chat('alice', 'laptop')
    await alice.waitFor(/^ready\./m, MINUTE)
    alice.child.stdin!.write('/create\n/invite bob\n')
    await alice.waitFor(/\* invited bob\/phone \(epoch 1\)/, MINUTE)
    await bob.waitFor(/joined group [0-9a-f]{8} from a Welcome \(epoch 1, 2 members\)/, MINUTE)
    alice.child.stdin!.write('hello from an npm install\n')
    await bob.waitFor(/<alice\/laptop> hello from an npm install/, MINUTE)
    bob.child.stdin!.write('/epoch\n')
    alice.child.stdin!.write('/epoch\n')
    const [bobEpoch] = await bob.waitFor(/epoch 1, epoch authenticator [0-9a-f]{64}/, MINUTE)
    const [aliceEpoch] = await alice.waitFor(/epoch 1, epoch authenticator [0-9a-f]{64}/, MINUTE)
    expect(bobEpoch).toBe(aliceEpoch)
    // The end of the input ends each chat, cleanly.
    alice.child.stdin!.end()
    bob.child.stdin!.end()
    const [aliceExit, bobExit] = await Promise.all([alice.exited, bob.exited])
    expect({ exit: aliceExit.code, output: alice.output() }).toMatchObject({ exit: 0 })
    expect({ exit: bobExit.code, output: bob.output() }).toMatchObject({ exit: 0 })
    server.child.kill('SIGTERM')
    expect((await server.exited).code).toBe(0)
  }, 14 * MINUTE)
})

describe('release rehearsal: a minimal pnpm project without an allowed better-sqlite3 build', () => {
  it('imports core and the WebSocket client alone; opening a SQLite store fails with STORAGE_IO naming the fix', async () => {
    const project = join(root, 'pnpm-no-build')
    mkdirSync(project)
    const version = (name: string): string => published.find((p) => p.name === name)!.version
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'no-build', private: true, type: 'module', dependencies: Object.fromEntries(['@mls/core', '@mls/storage-sqlite', '@mls/transport-ws'].map((name) => [name, version(name)])) })
    )
    writeFileSync(join(project, '.npmrc'), registry!.npmrc)
    writeFileSync(
      join(project, 'open.mjs'),
      [
        "import { StorageError, createMlsClient } from '@mls/core'",
        "import { webSockets } from '@mls/transport-ws'",
        "import { sqliteClientStore } from '@mls/storage-sqlite'",
        "if (typeof createMlsClient !== 'function' || typeof webSockets !== 'function') throw new Error('missing exports')",
        'try {',
        "  sqliteClientStore({ path: 'client.sqlite' })",
        "  console.log(JSON.stringify({ opened: true }))",
        '} catch (error) {',
        '  console.log(JSON.stringify({ code: error.code, details: error.details, message: error.message, coreClass: error instanceof StorageError }))',
        '}'
      ].join('\n')
    )
    const env = userEnvironment()
    const install = await runOk('pnpm', ['install', '--no-frozen-lockfile'], { cwd: project, env, timeoutMs: 5 * MINUTE })
    expect(install.stdout + install.stderr).toMatch(/Ignored build scripts: .*better-sqlite3/)
    const result = await runOk(process.execPath, ['open.mjs'], { cwd: project, env })
    const outcome = JSON.parse(result.stdout) as { code?: string; details?: Record<string, unknown>; message?: string; coreClass?: boolean }
    // coreClass: the adapter throws @mls/contracts' StorageError, the very class @mls/core re-exports.
    expect(outcome).toMatchObject({ code: 'STORAGE_IO', details: { reason: 'native-binding-missing', package: 'better-sqlite3' }, coreClass: true })
    expect(outcome.message).toContain('onlyBuiltDependencies')
  }, 6 * MINUTE)
})

for (const manager of ['npm', 'pnpm'] as const) {
  describe(`release rehearsal: adapters installed with ${manager} without the engine`, () => {
    it('installs a store and the WebSocket client without @mls/core or ts-mls; they type-check (skipLibCheck: false) and run', async () => {
      const project = join(root, `${manager}-adapters-only`)
      mkdirSync(project)
      const version = (name: string): string => published.find((p) => p.name === name)!.version
      const names = ['@mls/contracts', '@mls/storage-memory', '@mls/transport-ws']
      // TypeScript as the examples pin it, to check the adapters' published declarations without core beside them.
      const examples = JSON.parse(readFileSync(join(EXAMPLES, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }
      writeFileSync(
        join(project, 'package.json'),
        JSON.stringify({
          name: 'adapters-only',
          private: true,
          type: 'module',
          dependencies: Object.fromEntries(names.map((name) => [name, version(name)])),
          devDependencies: { typescript: examples.devDependencies.typescript }
        })
      )
      writeFileSync(
        join(project, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: { target: 'ES2022', lib: ['ES2022', 'DOM'], module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: false, allowJs: true, checkJs: true, noEmit: true, types: [] },
          files: ['run.mjs']
        })
      )
      writeFileSync(join(project, '.npmrc'), registry!.npmrc)
      writeFileSync(
        join(project, 'run.mjs'),
        [
          "import { StorageError, MlsToolkitError } from '@mls/contracts'",
          "import { memoryClientStore } from '@mls/storage-memory'",
          "import { webSockets } from '@mls/transport-ws'",
          "const store = memoryClientStore()",
          "await store.write([{ type: 'put', key: 'k', value: new Uint8Array([1, 2]) }])",
          "const read = [...((await store.get('k')) ?? [])]",
          'await store.close()',
          "const error = await store.get('k').catch((e) => e)",
          "console.log(JSON.stringify({ read, code: error.code, storageError: error instanceof StorageError, marked: MlsToolkitError.isInstance(error), transport: typeof webSockets }))"
        ].join('\n')
      )
      const env = userEnvironment()
      await runOk(manager, manager === 'npm' ? ['install', '--no-audit', '--no-fund'] : ['install', '--no-frozen-lockfile'], { cwd: project, env, timeoutMs: 5 * MINUTE })
      // Nothing of the engine anywhere in the installed tree (npm installs peers too, so a peer on core would show here).
      // npm lays every package out flat in node_modules (scoped ones under @scope/); pnpm keeps one folder per
      // package version in node_modules/.pnpm (`@mls+contracts@0.1.0`, `ts-mls@1.6.4`).
      const modules = join(project, 'node_modules')
      const installed =
        manager === 'npm'
          ? readdirSync(modules).flatMap((entry) => (entry.startsWith('@') ? readdirSync(join(modules, entry)).map((name) => `${entry}/${name}`) : [entry]))
          : readdirSync(join(modules, '.pnpm'))
      expect(installed.filter((entry) => /@mls[/+]contracts|^ws(@|$)/.test(entry))).toHaveLength(2)
      expect(installed.filter((entry) => /ts-mls|@mls[/+](core|server)\b|@noble|@hpke/.test(entry))).toEqual([])
      await runOk(process.execPath, [join(project, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], { cwd: project, env, timeoutMs: 2 * MINUTE })
      const result = await runOk(process.execPath, ['run.mjs'], { cwd: project, env })
      expect(JSON.parse(result.stdout)).toEqual({ read: [1, 2], code: 'STORAGE_CLOSED', storageError: true, marked: true, transport: 'function' })
    }, 6 * MINUTE)
  })
}

it('leaves nothing running', async () => {
  // Every example exited by itself and every server stopped on SIGTERM.
  expect([...running].map((child) => child.child.spawnargs.join(' '))).toEqual([])
})

