/**
 * Acceptance: under a steady webhook load with retention of a few seconds (the test unit), the
 * SQLite file (with its -wal) and the PostgreSQL tables stop growing, and shrink once the load
 * stops. Sizes are sampled while a server takes webhooks; nothing waits a fixed time for
 * correctness — the shrink is polled for, with a bound.
 */
import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { AuditLog } from '../../src/privacy/audit.js';
import { retentionConfig } from '../../src/privacy/retention-policy.js';
import { storeSize } from '../../src/privacy/retention-space.js';
import { pgDatabaseUrl, startTestServer } from '../helpers/server.js';
import { describeStores } from '../store/support.js';

const FLOW = `version: 1
name: intake
trigger: { webhook: { path: intake, respond: accepted } }
steps:
  - id: order
    input: { trigger: true }
  - id: priced
    compute: { from: order, columns: { total: "qty * price" } }
`;

/** ~8 KB of JSON: an order with lines, each with a random note (so the store cannot compress it away). */
function body(): string {
  return JSON.stringify(
    Array.from({ length: 24 }, (_, i) => ({
      sku: `SKU-${1000 + i}`,
      note: randomBytes(192).toString('base64'),
      qty: 1 + (i % 3),
      price: 4.5 + i,
    })),
  );
}
const BODY_BYTES = body().length;

/**
 * Load and retention. The load is paced, not as fast as the machine goes: a steady rate well
 * under what a busy CI machine takes, so that what is measured is retention, not whether the
 * purger gets CPU time next to a saturating load (a slow machine would otherwise fall behind and
 * look like growth).
 */
const LOAD_MS = 10_000;
const RATE_PER_S = 40;
const RETENTION_S = 1;
const SAMPLE_MS = 200;
const CONNECTIONS = 4;

await describeStores('retention gives space back', (kind) => {
  it(
    'stops the store growing under steady load, and shrinks it after the load stops',
    { timeout: 90_000 },
    async () => {
      // PostgreSQL: a database of its own, so other test files' open transactions cannot hold
      // back what VACUUM may remove.
      const database = kind === 'postgres' ? await pgDatabaseUrl() : undefined;
      const t = await startTestServer({
        store: kind,
        config: {
          ...(database ? { databaseUrl: database.url } : {}),
          retention: retentionConfig({
            unit: 'second',
            defaults: {
              gateway_log: RETENTION_S,
              dlq: RETENTION_S,
              notification: RETENTION_S,
              activity: RETENTION_S,
              execution_detail: RETENTION_S,
              audit: 3 * RETENTION_S,
            },
            bounds: Object.fromEntries(
              ['gateway_log', 'dlq', 'notification', 'activity', 'execution_detail'].map((c) => [
                c,
                { min: 1, max: 60 },
              ]),
            ),
            purge: { intervalMs: 250, initialDelayMs: 0, vacuumIntervalMs: 0 },
          }),
        },
      });
      try {
        const store = t.server.context.store;
        const put = await t.api('/api/v1/workspaces/default/flows/intake', {
          method: 'PUT',
          headers: { 'content-type': 'application/yaml' },
          body: FLOW,
        });
        expect(put.status).toBe(201);
        const size = async () => {
          const s = await storeSize(store);
          return s.bytes + s.walBytes;
        };
        const baseline = await size();

        // Steady load: CONNECTIONS clients posting webhooks back to back.
        const samples: { at: number; bytes: number; heap?: number }[] = [];
        let accepted = 0;
        const acceptedAt: number[] = [];
        const acceptedAfter = (fraction: number) =>
          acceptedAt.filter((at) => at >= fraction * LOAD_MS).length;
        const started = Date.now();
        const deadline = started + LOAD_MS;
        const client = async (index: number) => {
          // Each client sends on its own slots, 1/RATE_PER_S apart across the clients.
          const every = (CONNECTIONS * 1000) / RATE_PER_S;
          for (let slot = 0; ; slot++) {
            const at = started + (index * every) / CONNECTIONS + slot * every;
            if (at >= deadline) break;
            const wait = at - Date.now();
            if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
            const response = await fetch(`${t.url}/hooks/default/intake`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: body(),
            });
            await response.arrayBuffer();
            if (response.status === 202) {
              accepted++;
              acceptedAt.push(Date.now() - started);
            }
          }
        };
        const sampler = (async () => {
          while (Date.now() < deadline) {
            const s = await storeSize(store);
            samples.push({ at: Date.now() - started, bytes: s.bytes + s.walBytes, heap: s.heapBytes });
            await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
          }
        })();
        await Promise.all([...Array.from({ length: CONNECTIONS }, (_, i) => client(i)), sampler]);
        const loadEnded = Date.now();

        const window = (from: number, to: number) =>
          Math.max(
            ...samples.filter((s) => s.at >= from * LOAD_MS && s.at <= to * LOAD_MS).map((s) => s.bytes),
          );
        const middle = window(0.3, 0.5);
        const end = window(0.8, 1);
        const peak = Math.max(...samples.map((s) => s.bytes));
        const written = accepted * BODY_BYTES;
        const writtenSecondHalf = acceptedAfter(0.5) * BODY_BYTES;
        const summary = {
          kind,
          accepted,
          writtenMB: +(written / 1048576).toFixed(1),
          secondHalfMB: +(writtenSecondHalf / 1048576).toFixed(1),
          baselineMB: +(baseline / 1048576).toFixed(2),
          middleMB: +(middle / 1048576).toFixed(2),
          endMB: +(end / 1048576).toFixed(2),
          peakMB: +(peak / 1048576).toFixed(2),
        };
        // Printed before the assertions, so a failure shows its figures.
        console.log(JSON.stringify(summary));
        // The load was real, and the store flattened: the second half of the load added less
        // than half of what it wrote (without retention, the store grows by at least the
        // bodies, which the gateway log keeps).
        expect(accepted).toBeGreaterThan(0.75 * RATE_PER_S * (LOAD_MS / 1000));
        expect(end - middle).toBeLessThan(0.5 * writtenSecondHalf);

        // After the load: everything expires, is purged, and the space comes back. SQLite: the
        // file and its -wal go back most of the way to where they started (incremental vacuum,
        // then a TRUNCATE checkpoint once quiet). PostgreSQL: VACUUM truncates the emptied
        // tables (heap and TOAST) to nothing; their indexes keep their pages, for reuse.
        const peakHeap = Math.max(...samples.map((s) => s.heap ?? 0));
        const rowsLeft = async () => {
          let n = 0;
          for (const table of ['runs', 'run_inputs', 'run_details', 'gateway_log'] as const)
            n += Number(
              (
                await store.db
                  .selectFrom(table)
                  .select((eb) => eb.fn.countAll<number>().as('n'))
                  .executeTakeFirstOrThrow()
              ).n,
            );
          return n;
        };
        let after = await storeSize(store);
        const shrunk = (now: typeof after) =>
          kind === 'sqlite'
            ? now.bytes + now.walBytes < baseline + 0.5 * (peak - baseline)
            : (now.heapBytes ?? Infinity) <= 64 * 1024 && now.bytes <= peak - 0.8 * peakHeap;
        const limit = Date.now() + 30_000;
        while (!(shrunk(after) && (await rowsLeft()) === 0) && Date.now() < limit) {
          await new Promise((resolve) => setTimeout(resolve, 250));
          after = await storeSize(store);
        }
        // One line of figures per store, for the record.
        console.log(
          JSON.stringify({
            kind,
            peakHeapMB: +(peakHeap / 1048576).toFixed(2),
            afterMB: +((after.bytes + after.walBytes) / 1048576).toFixed(2),
            afterHeapKB: after.heapBytes === undefined ? null : Math.round(after.heapBytes / 1024),
            seconds: (Date.now() - loadEnded) / 1000,
          }),
        );
        expect(shrunk(after)).toBe(true);
        expect(after.bytes + after.walBytes).toBeLessThan(peak);
        for (const table of ['runs', 'run_inputs', 'run_details', 'gateway_log'] as const) {
          const left = await store.db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .executeTakeFirstOrThrow();
          expect(Number(left.n), table).toBe(0);
        }
        // Every purge left its receipt, and the chain (purged by retention too) verifies.
        expect(await new AuditLog(store.db).verify()).toMatchObject({ ok: true });
        const metrics = await t.api('/metrics');
        expect(await metrics.text()).toMatch(/lethe_purged_records_total\{data_class="gateway_log"\} \d{3,}/);
      } finally {
        await t.close();
        await database?.drop();
      }
    },
  );
});
