import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['packages/core/src/vendor/**', '**/dist/**', '**/node_modules/**', '**/.turbo/**', '**/coverage/**'] },
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
  }
)
