import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LetheError } from '../../src/errors/index.js';
import { Keystore, keystorePath, openKeystore } from '../../src/security/keystore.js';
import { loadMasterKey, type MasterKey } from '../../src/security/vault.js';

const run = promisify(execFile);

const master = (): MasterKey =>
  loadMasterKey('/nonexistent', { LETHE_MASTER_KEY: randomBytes(32).toString('hex') });

describe('keystore', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lethe-keystore-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const fresh = () => mkdtempSync(join(dir, 'ks-'));

  it('lives in the data dir, or where LETHE_KEYSTORE says', () => {
    expect(keystorePath('/data', {})).toBe('/data/keystore.json');
    expect(keystorePath('/data', { LETHE_KEYSTORE: '' })).toBe('/data/keystore.json');
    expect(keystorePath('/data', { LETHE_KEYSTORE: '/shared/keys.json' })).toBe('/shared/keys.json');
    expect(keystorePath('/data', { LETHE_KEYSTORE: 'rel/keys.json' })).toBe(resolve('rel/keys.json'));
    expect(openKeystore('/data', { LETHE_KEYSTORE: '/shared/k.json' }).path).toBe('/shared/k.json');
  });

  it('is written only when a secret is made, with mode 0600, atomically, and holds secrets only sealed', async () => {
    const dataDir = fresh();
    const keystore = openKeystore(dataDir, {});
    const key = master();
    expect(keystore.state('w1')).toBe('missing');
    expect(existsSync(keystore.path)).toBe(false);
    const secret = await keystore.secret('w1', key, { create: true });
    expect(secret).toHaveLength(32);
    expect(statSync(keystore.path).mode & 0o777).toBe(0o600);
    // The same secret again, from this object and from another (another process).
    expect((await keystore.secret('w1', key, { create: true })).equals(secret)).toBe(true);
    expect((await new Keystore(keystore.path).secret('w1', key, { create: false })).equals(secret)).toBe(
      true,
    );
    await keystore.secret('w2', key, { create: true });
    // Nothing left behind: no temporary files, no lock.
    expect(readdirSync(dataDir)).toEqual(['keystore.json']);
    const text = readFileSync(keystore.path, 'utf8');
    for (const form of [secret.toString('hex'), secret.toString('base64'), key.key.toString('base64')])
      expect(text).not.toContain(form);
    expect(JSON.parse(text)).toMatchObject({
      format: 'lethe-keystore',
      version: 1,
      workspaces: { w1: { state: 'active', masterKeyId: key.id }, w2: { state: 'active' } },
    });
    // A file left readable by others is closed again when read.
    chmodSync(keystore.path, 0o644);
    expect(new Keystore(keystore.path).state('w1')).toBe('active');
    expect(statSync(keystore.path).mode & 0o777).toBe(0o600);
  });

  it('refuses another master key, and a missing entry without create', async () => {
    const keystore = openKeystore(fresh(), {});
    await keystore.secret('w', master(), { create: true });
    await expect(keystore.secret('w', master(), { create: false })).rejects.toThrow(/another master key/);
    await expect(keystore.secret('nobody', master(), { create: false })).rejects.toThrow(
      /holds no key for this workspace/,
    );
  });

  it('seals, unseals and destroys; a workspace without an entry is sealed or destroyed too', async () => {
    const keystore = openKeystore(fresh(), {});
    const key = master();
    const secret = await keystore.secret('w', key, { create: true });
    expect(await keystore.seal('w', key, 1000)).toBe('active');
    await expect(keystore.secret('w', key, { create: true })).rejects.toThrow(/passive storage/);
    expect(await keystore.unseal('w', key)).toBe('sealed');
    expect((await keystore.secret('w', key, { create: false })).equals(secret)).toBe(true);
    expect(await keystore.seal('new', key)).toBe('missing');
    expect(keystore.state('new')).toBe('sealed');
    // Creating does not turn a sealed entry into an active one.
    await expect(keystore.secret('new', key, { create: true })).rejects.toThrow(/passive storage/);
    expect(await keystore.destroy('w', 2000)).toBe('active');
    expect(await keystore.destroy('w')).toBe('destroyed');
    expect(await keystore.destroy('never-used')).toBe('missing');
    await expect(keystore.secret('w', key, { create: true })).rejects.toThrow(/crypto-shredded/);
    await expect(keystore.unseal('w', key)).rejects.toThrow(/cannot be reopened/);
    expect(keystore.states()).toEqual(
      new Map([
        ['w', 'destroyed'],
        ['new', 'sealed'],
        ['never-used', 'destroyed'],
      ]),
    );
    const text = readFileSync(keystore.path, 'utf8');
    expect(JSON.parse(text).workspaces.w).toEqual({
      state: 'destroyed',
      createdAt: expect.any(Number),
      destroyedAt: 2000,
    });
  });

  it('refuses a damaged file and never overwrites it', async () => {
    const keystore = openKeystore(fresh(), {});
    for (const damaged of [
      'not json',
      '{"format":"other"}',
      '{"format":"lethe-keystore","version":1,"workspaces":{"w":{"state":"active"}}}',
    ]) {
      writeFileSync(keystore.path, damaged, { mode: 0o600 });
      const error = await keystore.secret('x', master(), { create: true }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LetheError);
      expect((error as LetheError).message).toMatch(/not a Lethe keystore|damaged/);
      expect(readFileSync(keystore.path, 'utf8')).toBe(damaged);
    }
  });

  it('waits for a lock, takes over a stale one, and says who to blame for one that stays', async () => {
    const keystore = new Keystore(join(fresh(), 'keystore.json'), {
      lockTimeoutMs: 200,
      staleLockMs: 60_000,
    });
    const lock = `${keystore.path}.lock`;
    writeFileSync(lock, 'someone\n');
    const error = await keystore.secret('w', master(), { create: true }).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'CONFLICT',
      message: expect.stringMatching(/locked by another process/),
    });
    expect(existsSync(keystore.path)).toBe(false);
    // A lock left by a dead process (older than staleLockMs) is taken over.
    const old = new Date(Date.now() - 120_000);
    utimesSync(lock, old, old);
    await keystore.secret('w', master(), { create: true });
    expect(keystore.state('w')).toBe('active');
    expect(existsSync(lock)).toBe(false);
    // A lock released while waiting is taken.
    writeFileSync(lock, 'briefly\n');
    setTimeout(() => rmSync(lock), 50);
    const patient = new Keystore(keystore.path, { lockTimeoutMs: 5000 });
    await patient.secret('w2', master(), { create: true });
    expect(patient.state('w2')).toBe('active');
  });

  it('a missing folder is a clear error', async () => {
    const keystore = new Keystore(join(dir, 'no-such-folder', 'keystore.json'));
    await expect(keystore.secret('w', master(), { create: true })).rejects.toThrow(
      /folder .* does not exist/,
    );
  });

  it('processes writing at once lose no entry', async () => {
    const path = join(fresh(), 'keystore.json');
    const key = randomBytes(32).toString('hex');
    const script = `
      import { Keystore } from ${JSON.stringify(resolve('src/security/keystore.ts'))};
      import { loadMasterKey } from ${JSON.stringify(resolve('src/security/vault.ts'))};
      const master = loadMasterKey('/nonexistent', { LETHE_MASTER_KEY: process.env.KEY });
      const keystore = new Keystore(process.env.KS);
      for (let i = 0; i < 15; i++) await keystore.secret(process.env.WHO + '-' + i, master, { create: true });
    `;
    const tsx = resolve('node_modules/.bin/tsx');
    await Promise.all(
      ['a', 'b', 'c', 'd'].map((who) =>
        run(tsx, ['--input-type=module', '-e', script], {
          env: { ...process.env, KEY: key, KS: path, WHO: who },
        }),
      ),
    );
    const states = new Keystore(path).states();
    expect(states.size).toBe(60);
    expect([...states.values()].every((state) => state === 'active')).toBe(true);
  });
});
