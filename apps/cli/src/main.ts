#!/usr/bin/env node
import { clearLine, createInterface, cursorTo } from 'node:readline'
import { openChat } from './open.js'
import { OptionsError, parseOptions } from './options.js'
import type { Output } from './chat.js'

let options
try {
  options = parseOptions(process.argv.slice(2))
} catch (error) {
  if (error instanceof OptionsError && error.help) {
    process.stdout.write(`${error.message}\n`)
    process.exit(0)
  }
  process.stderr.write(`mls-chat: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(2)
}

// Node's readline keeps the line being typed; a line printed meanwhile is
// written above it and the prompt with the unfinished input is redrawn.
const terminal = process.stdout.isTTY === true
const rl = createInterface({ input: process.stdin, output: process.stdout, terminal, historySize: 200 })
const view: { prompt?: () => string } = {}
const print: Output = (line) => {
  if (terminal) {
    clearLine(process.stdout, 0)
    cursorTo(process.stdout, 0)
  }
  process.stdout.write(`${line}\n`)
  if (view.prompt !== undefined) rl.setPrompt(view.prompt())
  if (terminal) rl.prompt(true)
}

print(`mls-chat: ${options.user}/${options.device} connecting to ${options.server} (data in ${options.dataDir})`)
let chat
try {
  chat = await openChat(options, print)
} catch (error) {
  process.stderr.write(`mls-chat: cannot start: ${error instanceof Error ? error.message : String(error)}\n`)
  rl.close()
  process.exit(1)
}
const { session } = chat
view.prompt = () => session.prompt()
print('ready. /help lists the commands; plain lines go to the current group.')
rl.setPrompt(session.prompt())
if (terminal) rl.prompt()

let closing = false
const quit = async (): Promise<void> => {
  if (closing) return
  closing = true
  rl.close()
  await chat.close()
  process.exit(0)
}
// Lines are handled one at a time, in the order typed.
let queue = Promise.resolve()
rl.on('line', (line) => {
  queue = queue.then(async () => {
    const keepGoing = await session.handle(line)
    if (!keepGoing) return quit()
    rl.setPrompt(session.prompt())
    if (terminal) rl.prompt()
  })
})
// The input ended (Ctrl-D, or the end of piped lines): finish the lines read so far, then quit.
rl.on('close', () => void queue.then(quit))
process.on('SIGTERM', () => void quit())
