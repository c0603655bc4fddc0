export { CORE_CRYPTO_PACKAGE, loadOpenMls, OpenMlsPeer, type OpenMlsCommit, type OpenMlsReceived } from './openmls-peer.js'
export { readKeyPackage, TsMlsMember } from './ts-mls-member.js'
export { bareKeyPackage, OpenMlsDevice, OPENMLS_SUITE, type RelayedCommit, type RelayedEntry } from './openmls-device.js'
