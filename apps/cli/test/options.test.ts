import { describe, expect, it } from 'vitest'
import { OptionsError, parseOptions } from '../src/options.js'

describe('mls-chat options', () => {
  it('reads flags, then environment variables, then defaults', () => {
    expect(parseOptions(['--user', 'alice', '--server=ws://example.test:1'], { HOME: '/home/x' })).toMatchObject({ user: 'alice', device: 'cli', server: 'ws://example.test:1' })
    expect(parseOptions([], { MLS_CHAT_USER: 'bob', MLS_CHAT_DEVICE: 'phone', MLS_CHAT_DATA_DIR: '/tmp/d' })).toEqual({
      user: 'bob',
      device: 'phone',
      server: 'ws://127.0.0.1:8080',
      dataDir: '/tmp/d'
    })
  })

  it('refuses a missing user, unknown flags, empty values and non-WebSocket URLs', () => {
    expect(() => parseOptions([], {})).toThrow(/--user is required/)
    expect(() => parseOptions(['--user', 'a', '--evil'], {})).toThrow(/unknown option --evil/)
    expect(() => parseOptions(['--user'], {})).toThrow(/--user needs a value/)
    expect(() => parseOptions(['--user', 'a', '--server', 'http://x'], {})).toThrow(/ws:\/\/ or wss:\/\//)
    const help = (() => {
      try {
        parseOptions(['--help'], {})
      } catch (error) {
        return error
      }
    })()
    expect(help).toBeInstanceOf(OptionsError)
    expect((help as OptionsError).help).toBe(true)
  })
})
