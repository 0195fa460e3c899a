/**
 * `lethe erase` against a data dir: the request is made and processed in the command, the
 * report printed (never the subject), and `--list`, `--show` and `--extend` read and extend
 * requests. On SQLite (the data dir) and PostgreSQL (LETHE_DATABASE_URL).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import type { ErasureView } from '../../src/privacy/erasure.js';
import { Store } from '../../src/store/index.js';
import { pgSchemaUrl, startTestServer } from '../helpers/server.js';
import { describeStores } from '../server/api-support.js';
import { expectNoStackTrace, lethe } from '../cli/support.js';
import { canary, needlesOf, plant, scan } from './erasure-support.js';

await describeStores('lethe erase', (store) => {
  it('erases a subject from a data dir, prints the report, lists, shows, recognises a repeat and refuses to extend a done request', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'lethe-erase-cli-'));
    const schema = store === 'postgres' ? await pgSchemaUrl() : undefined;
    const env = { LETHE_DATABASE_URL: schema?.url ?? '', LETHE_MASTER_KEY: undefined };
    try {
      const t = await startTestServer({ dataDir, config: schema ? { databaseUrl: schema.url } : {} });
      const planted = await plant(t, 'default', canary(), 'cli');
      await t.close();

      const erase = await lethe(
        ['erase', '--subject', `email:${planted.subject}`, '--data-dir', dataDir, '--json'],
        {
          env,
        },
      );
      expect(erase.code, erase.stderr).toBe(0);
      expect(erase.stdout.toLowerCase()).not.toContain(planted.subject);
      const view = JSON.parse(erase.stdout) as ErasureView & { outcome: string };
      expect(view).toMatchObject({ status: 'completed', outcome: 'completed', requestedBy: 'cli' });
      for (const dataClass of ['execution_detail', 'gateway_log', 'dlq', 'config', 'credential'])
        expect(
          view.report!.classes.find((entry) => entry.dataClass === dataClass)!.found,
          dataClass,
        ).toBeGreaterThan(0);

      const opened = await Store.open({ url: schema?.url, dataDir });
      try {
        const { needles, exact, ignore } = needlesOf(planted);
        expect(await scan(opened, needles, exact, ignore)).toEqual([]);
      } finally {
        await opened.close();
      }

      const text = await lethe(['erase', '--show', view.id, '--data-dir', dataDir], { env });
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toMatch(new RegExp(`erasure request ${view.id} \\(email\\): completed`));
      expect(text.stdout).toMatch(/data_store\s+not stored/);

      const list = await lethe(['erase', '--list', '--data-dir', dataDir, '--json'], { env });
      expect((JSON.parse(list.stdout) as ErasureView[]).map((item) => item.id)).toContain(view.id);

      // A second request for the same subject is recognised (and finds nothing more).
      const again = await lethe(['erase', `email:${planted.subject.toUpperCase()}`, '--data-dir', dataDir], {
        env,
      });
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).toContain(`the subject was erased before: ${view.id}`);

      const extend = await lethe(['erase', '--extend', view.id, '--reason', 'late', '--data-dir', dataDir], {
        env,
      });
      expect(extend.code).toBe(2);
      expect(extend.stderr).toMatch(/completed/);
      expectNoStackTrace(extend);

      const bad = await lethe(['erase', '--subject', 'phone:123', '--data-dir', dataDir], { env });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/email:<address>/);
      expectNoStackTrace(bad);
    } finally {
      await schema?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
