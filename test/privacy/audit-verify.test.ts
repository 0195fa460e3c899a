/**
 * `lethe purge [--dry-run]` and `lethe audit verify` on SQLite and PostgreSQL: the dry run says
 * what the purge then deletes and deletes nothing; the purge leaves receipts; the audit chain
 * verifies — and stops verifying when an entry's count or details are changed, an entry is
 * removed, or one byte of an entry is flipped in the SQLite file itself.
 */
import {
  closeSync,
  openSync,
  readFileSync,
  readSync,
  writeSync,
  existsSync,
  mkdtempSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/privacy/audit.js';
import { newId } from '../../src/store/ids.js';
import type { Store } from '../../src/store/index.js';
import { expectNoStackTrace, lethe } from '../cli/support.js';
import { describeStores, gatewayRow, newPlace, runRow, type StorePlace } from '../store/support.js';

const DAY = 86_400_000;

/** Old and young rows in a workspace: what goes is 2 gateway entries, 1 run, 1 detail. */
async function seed(store: Store, name: string): Promise<void> {
  const ws = await store.workspaces.ensure(name);
  const now = Date.now();
  for (const age of [45, 40, 2]) {
    await store.db
      .insertInto('gateway_log')
      .values(
        gatewayRow(ws.id, {
          received_at: now - age * DAY,
          content_type: 'application/json',
          size: 200,
          body: JSON.stringify({ filler: 'x'.repeat(200) }),
        }),
      )
      .execute();
  }
  for (const age of [31, 2]) {
    const queued = now - age * DAY;
    await store.runs.insert(
      store.db,
      runRow(ws.id, { queued_at: queued, available_at: queued, status: 'succeeded' }),
      undefined,
    );
  }
  await store.db
    .insertInto('run_details')
    .values({
      run_id: newId(),
      workspace_id: ws.id,
      steps: '[]',
      error_message: null,
      created_at: now - 61 * DAY,
    })
    .execute();
}

await describeStores('lethe purge and lethe audit verify', (kind) => {
  let place: StorePlace | undefined;
  afterEach(async () => {
    await place?.cleanup();
    place = undefined;
  });

  async function setup() {
    place = await newPlace(kind);
    const store = await place.open();
    // The CLI finds the store by its data dir, or by LETHE_DATABASE_URL (PostgreSQL).
    const env = { LETHE_DATABASE_URL: place.url, LETHE_DATA_DIR: undefined };
    const cli = (...args: string[]) => lethe([...args, '--data-dir', place!.dataDir], { env });
    return { store, cli };
  }

  const count = async (store: Store, table: 'gateway_log' | 'runs' | 'run_details') =>
    Number(
      (
        await store.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  it('dry-runs, purges what the dry run said, and the receipts verify', async () => {
    const { store, cli } = await setup();
    await seed(store, 'alpha');
    await seed(store, 'beta');

    const dry = await cli('purge', '--dry-run', '--json');
    expect(dry.code, dry.stderr).toBe(0);
    const forecast = JSON.parse(dry.stdout) as {
      dryRun: boolean;
      total: number;
      bytes: number;
      classes: {
        workspace: string | null;
        dataClass: string;
        records: number;
        oldestAgeSeconds: number | null;
        bytes: number;
      }[];
    };
    expect(forecast.dryRun).toBe(true);
    expect(forecast.total).toBe(2 * 4);
    const alpha = (dataClass: string) =>
      forecast.classes.find((c) => c.workspace === 'alpha' && c.dataClass === dataClass)!;
    expect(alpha('gateway_log')).toMatchObject({ records: 2 });
    expect(alpha('gateway_log').oldestAgeSeconds).toBeGreaterThanOrEqual(45 * 86_400 - 60);
    expect(alpha('gateway_log').bytes).toBeGreaterThan(2 * 200);
    expect(alpha('activity')).toMatchObject({ records: 1 });
    expect(alpha('execution_detail')).toMatchObject({ records: 1 });
    expect(alpha('notification')).toMatchObject({ records: 0 });
    expect(forecast.bytes).toBeGreaterThan(0);
    // Nothing was deleted.
    expect(await count(store, 'gateway_log')).toBe(6);

    const text = await cli('purge', '--dry-run');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^dry run: 8 records would be purged now, about .+ \(nothing was deleted\)/);
    expect(text.stdout).toMatch(/alpha\s+gateway_log\s+30 d\s+2\s+45 d/);

    const one = await cli('purge', '--workspace', 'beta', '--json');
    expect(one.code, one.stderr).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({ dryRun: false, total: 4 });
    expect(await count(store, 'gateway_log')).toBe(4);

    const purge = await cli('purge');
    expect(purge.code, purge.stderr).toBe(0);
    expect(purge.stdout).toMatch(/^purged 4 records in /);
    expect(purge.stdout).toMatch(/alpha\s+gateway_log\s+2/);
    expect(await count(store, 'gateway_log')).toBe(2);
    expect(await count(store, 'runs')).toBe(2);
    expect(await count(store, 'run_details')).toBe(0);

    const receipts = await store.db
      .selectFrom('audit_log')
      .select(['actor', 'action', 'data_class', 'count', 'reason'])
      .where('action', '=', 'purge')
      .execute();
    expect(receipts).toHaveLength(2 * 3);
    expect(receipts.every((r) => r.actor === 'cli' && r.reason === 'retention')).toBe(true);
    expect(receipts.reduce((sum, r) => sum + Number(r.count), 0)).toBe(8);

    const verify = await cli('audit', 'verify');
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toBe('audit log intact: 6 entries verified\n');
  });

  it('fails verification after an entry’s count or details change, or an entry goes, and says where', async () => {
    const { store, cli } = await setup();
    const audit = new AuditLog(store.db);
    for (let i = 0; i < 5; i++)
      await audit.append({
        workspaceId: 'w',
        actor: 'test',
        action: 'purge',
        dataClass: 'activity',
        count: 10 + i,
        reason: 'retention',
        details: { n: i },
      });
    expect((await cli('audit', 'verify')).code).toBe(0);

    await sql`update audit_log set count = count + 1 where seq = 3`.execute(store.db);
    let verify = await cli('audit', 'verify');
    expect(verify.code).toBe(1);
    expect(verify.stdout).toBe(
      'audit log BROKEN at entry 3: entry 3 was altered (2 entries before it verify)\n',
    );
    expectNoStackTrace(verify);
    const json = await cli('audit', 'verify', '--json');
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, brokenAt: 3, checked: 2 });
    await sql`update audit_log set count = count - 1 where seq = 3`.execute(store.db);
    expect((await cli('audit', 'verify')).code).toBe(0);

    await sql`update audit_log set details = ${JSON.stringify({ n: 99 })} where seq = 4`.execute(store.db);
    verify = await cli('audit', 'verify');
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(/BROKEN at entry 4: entry 4 was altered/);
    await sql`update audit_log set details = ${JSON.stringify({ n: 3 })} where seq = 4`.execute(store.db);
    expect((await cli('audit', 'verify')).code).toBe(0);

    await sql`delete from audit_log where seq = 2`.execute(store.db);
    verify = await cli('audit', 'verify');
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(/BROKEN at entry 2: entry 2 is missing/);
  });

  it('refuses a data dir without a store and an unknown workspace, without a stack trace', async () => {
    const { cli } = await setup();
    const unknown = await cli('purge', '--workspace', 'nowhere');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/there is no workspace "nowhere"/);
    expectNoStackTrace(unknown);
    if (kind === 'sqlite') {
      const empty = mkdtempSync(join(tmpdir(), 'lethe-empty-'));
      try {
        const result = await lethe(['audit', 'verify', '--data-dir', empty], {
          env: { LETHE_DATABASE_URL: undefined },
        });
        expect(result.code).toBe(2);
        expect(result.stderr).toMatch(/there is no Lethe store in/);
        expect(existsSync(join(empty, 'lethe.db'))).toBe(false);
      } finally {
        rmSync(empty, { recursive: true, force: true });
      }
    }
  });

  if (kind === 'sqlite') {
    describe('in the file itself', () => {
      it('fails verification after one byte of an entry is flipped in the SQLite file', async () => {
        const { store, cli } = await setup();
        const audit = new AuditLog(store.db);
        const marker = `tamper-${newId()}`;
        await audit.append({
          actor: 'test',
          action: 'purge',
          dataClass: 'gateway_log',
          count: 3,
          details: { marker },
        });
        for (let i = 0; i < 3; i++)
          await audit.append({ actor: 'test', action: 'purge', dataClass: 'activity', count: i });
        expect((await cli('audit', 'verify')).code).toBe(0);
        // Closing the only connection checkpoints the WAL into the file and removes it.
        await store.close();
        const file = join(place!.dataDir, 'lethe.db');
        expect(existsSync(`${file}-wal`)).toBe(false);
        const bytes = readFileSync(file);
        const needle = Buffer.from(marker);
        const positions: number[] = [];
        for (let at = bytes.indexOf(needle); at >= 0; at = bytes.indexOf(needle, at + 1)) positions.push(at);
        expect(positions.length).toBeGreaterThan(0);
        // Flip the marker's last character ('t' in "tamper" is safe too, but the id is unique).
        const fd = openSync(file, 'r+');
        try {
          for (const at of positions) {
            const offset = at + needle.length - 1;
            const one = Buffer.alloc(1);
            readSync(fd, one, 0, 1, offset);
            one[0] = one[0] === 0x30 ? 0x31 : 0x30;
            writeSync(fd, one, 0, 1, offset);
          }
        } finally {
          closeSync(fd);
        }
        const verify = await cli('audit', 'verify');
        expect(verify.code).toBe(1);
        expect(verify.stdout).toMatch(
          /BROKEN at entry 1: entry 1 was altered \(0 entries before it verify\)/,
        );
      });
    });
  }
});
