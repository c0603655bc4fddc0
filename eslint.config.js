import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['packages/core/src/vendor/**', 'docs/api/**', '**/dist/**', '**/node_modules/**', '**/.turbo/**', '**/coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // TypeScript checks undefined names; plain .js/.mjs scripts run on Node.
      'no-undef': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-syntax': [
        'error',
        {
          selector: "ImportDeclaration[source.value=/^\\.{1,2}\\/.*(?<!\\.js)$/]",
          message: 'Relative imports must end in .js'
        },
        {
          selector: "ExportNamedDeclaration[source.value=/^\\.{1,2}\\/.*(?<!\\.js)$/]",
          message: 'Relative re-exports must end in .js'
        }
      ],
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['ts-mls', 'ts-mls/*'], message: 'Only @mls/core imports ts-mls; use its re-exports (@mls/core/mls).' }] }
      ]
    }
  },
  {
    files: ['packages/core/**'],
    rules: { 'no-restricted-imports': 'off' }
  },
  {
    // Group code (and the client) reaches ts-mls only through mls-adapter.ts (types may be imported).
    // The record codec (group-records.ts, group-persistence.ts) encodes with ts-mls's codec itself.
    files: [
      'packages/core/src/client.ts',
      'packages/core/src/group.ts',
      'packages/core/src/group-receive.ts',
      'packages/core/src/group-state.ts',
      'packages/core/src/group-sync.ts',
      'packages/core/src/group-types.ts',
      'packages/core/src/group-info.ts',
      'packages/core/src/commit-plan.ts',
      'packages/core/src/proposals.ts',
      'packages/core/src/welcome-policy.ts',
      'packages/core/src/recovery/**'
    ],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['ts-mls', 'ts-mls/*'], allowTypeImports: true, message: 'Call ts-mls through mls-adapter.ts.' },
            { group: ['**/ts-mls-fixes.js'], message: 'Call the patched ts-mls through mls-adapter.ts.' }
          ]
        }
      ]
    }
  },
  {
    // The contracts package installs nothing: it imports only its own modules.
    files: ['packages/contracts/src/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '^[^.]', message: '@mls/contracts imports nothing outside itself (it has no dependencies).' }] }]
    }
  },
  {
    // Adapters that implement a contract depend on @mls/contracts, never on the engine (their tests may).
    files: ['packages/storage-*/src/**', 'packages/transport-*/src/**'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['ts-mls', 'ts-mls/*'], message: 'Only @mls/core imports ts-mls; use its re-exports (@mls/core/mls).' },
            { group: ['@mls/core', '@mls/core/*'], message: 'Adapters import @mls/contracts, so installing them does not install the engine.' }
          ]
        }
      ]
    }
  }
)
