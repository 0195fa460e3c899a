import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Tests that spawn the CLI need the bundle: built once before the suite.
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
  },
});
