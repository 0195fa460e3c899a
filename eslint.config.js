// Lint rules that guard the architecture and the security rules, on top of typescript-eslint.
import tseslint from 'typescript-eslint';

const forbiddenDynamicCode = [
  { selector: "CallExpression[callee.name='eval']", message: 'eval is forbidden (SPEC 4.1).' },
  { selector: "NewExpression[callee.name='Function']", message: 'new Function is forbidden (SPEC 4.1).' },
];

export default tseslint.config(
  {
    ignores: ['dist/', 'node_modules/', 'coverage/', 'bench/data/', 'bench/out/', 'tmp/', 'examples/**/out/'],
  },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      'no-restricted-syntax': ['error', ...forbiddenDynamicCode],
      'no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'vm', message: 'vm is forbidden' },
            { name: 'node:vm', message: 'vm is forbidden' },
          ],
        },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    // The engine is a library: it must not know the CLI (nor, later, the server, store or queue).
    files: [
      'src/engine/**',
      'src/commands/**',
      'src/flow/**',
      'src/expr/**',
      'src/table/**',
      'src/connectors/**',
      'src/egress/**',
    ],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'node:vm', message: 'vm is forbidden' },
            { name: 'vm', message: 'vm is forbidden' },
          ],
          patterns: [
            {
              group: ['**/cli/**', '**/server/**', '**/store/**', '**/queue/**'],
              message: 'the engine must not depend on the CLI, server, store or queue',
            },
          ],
        },
      ],
    },
  },
);
