export { ChatSession, CommandError, HELP, type Output } from './chat.js'
export { History, type HistoryEntry } from './history.js'
export { parseOptions, OptionsError, USAGE, type ChatOptions } from './options.js'
export { openChat, type OpenChat } from './open.js'
