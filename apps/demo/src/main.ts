#!/usr/bin/env node
import { tsMlsDefaultCrypto } from '@mls/core'
import { createServices } from '@mls/server'
import { memoryServerStore } from '@mls/storage-memory'
import { memoryTransport } from '@mls/transport-memory'
import { runDemo } from './demo.js'

const crypto = tsMlsDefaultCrypto()
const services = createServices({ store: memoryServerStore(), crypto })
const result = await runDemo({ transport: memoryTransport({ services }), crypto, transportName: 'the in-process transport' })
process.exit(result.ok ? 0 : 1)
