// Moved to @mls/contracts (adapters throw these without installing the engine); re-exported unchanged, so
// `instanceof` holds between an error an adapter throws and the class core exports.
export * from '@mls/contracts/errors'
