/**
 * Every example flow runs with exit 0 — each against a copy of its folder in a temporary
 * directory (they write out/ and .lethe/state), so the repository stays clean. Run twice, since
 * the second run meets the state and outputs the first one left.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyExample, expectNoStackTrace, inTempDir, lethe, root, runJson } from './support.js';

const examples = readdirSync(join(root, 'examples'), { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(join(root, 'examples', entry.name, 'flow.yaml')))
  .map((entry) => entry.name)
  .sort();

describe.concurrent('examples', () => {
  it('there are examples to run', () => {
    expect(examples.length).toBeGreaterThanOrEqual(4);
  });

  it.each(examples)('examples/%s/flow.yaml runs with exit 0 (twice)', async (name) => {
    await inTempDir(async (dir) => {
      const folder = join(dir, name);
      copyExample(name, folder);
      // The examples' own defaults only: no variable from the test's environment.
      const env = { LETHE_WAREHOUSE: undefined };
      for (const round of [1, 2]) {
        const result = await lethe(['run', join(folder, 'flow.yaml'), '--json'], {
          cwd: dir,
          env,
          timeoutMs: 60_000,
        });
        expectNoStackTrace(result);
        expect(result.stderr, `round ${round}`).toBe('');
        const json = runJson(result);
        expect(json.error, `round ${round}`).toBeUndefined();
        expect(json.status).toBe('succeeded');
        expect(json.steps.every((step) => step.status === 'succeeded')).toBe(true);
        expect(result.code).toBe(0);
      }
      expect(existsSync(join(folder, 'out'))).toBe(true);
    });
  });
});
