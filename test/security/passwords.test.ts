import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/privacy/audit.js';
import { commonPasswordCount } from '../../src/security/common-passwords.js';
import {
  checkPassword,
  hashPassword,
  needsRehash,
  parsePhc,
  PasswordRejected,
  passwordProblem,
  verifyPassword,
} from '../../src/security/passwords.js';
import {
  ARGON2_FLOOR,
  checkHashing,
  DEFAULT_HASHING,
  PBKDF2_FLOOR,
  peopleConfigFromEnv,
  type PasswordHashing,
} from '../../src/security/people-config.js';
import { People } from '../../src/security/people.js';
import { describeStores, useStore } from '../store/support.js';

const root = join(import.meta.dirname, '..', '..');
const PBKDF2: PasswordHashing = { ...DEFAULT_HASHING, algorithm: 'pbkdf2' };

describe('password hashes', () => {
  it('Argon2id by default, at the OWASP floor, as a PHC string that verifies', async () => {
    expect(DEFAULT_HASHING.algorithm).toBe('argon2id');
    const phc = await hashPassword('plum kettle orbit 42', DEFAULT_HASHING);
    expect(phc).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    const parsed = parsePhc(phc)!;
    expect(parsed.params).toEqual({ m: 19 * 1024, t: 2, p: 1 });
    expect(parsed.salt).toHaveLength(16);
    expect(parsed.hash).toHaveLength(32);
    expect(await verifyPassword(phc, 'plum kettle orbit 42')).toBe(true);
    expect(await verifyPassword(phc, 'plum kettle orbit 43')).toBe(false);
    // A fresh salt every time.
    expect(await hashPassword('plum kettle orbit 42', DEFAULT_HASHING)).not.toBe(phc);
  });

  it('PBKDF2-HMAC-SHA512 with at least 220,000 iterations as the FIPS option', async () => {
    const phc = await hashPassword('plum kettle orbit 42', PBKDF2);
    expect(phc).toMatch(/^\$pbkdf2-sha512\$i=220000\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{86}$/);
    const parsed = parsePhc(phc)!;
    expect(parsed.params.i).toBeGreaterThanOrEqual(220_000);
    expect(parsed.hash).toHaveLength(64);
    expect(await verifyPassword(phc, 'plum kettle orbit 42')).toBe(true);
    expect(await verifyPassword(phc, 'Plum kettle orbit 42')).toBe(false);
    // An independent computation of the same PHC string (node:crypto, the PHC encoding).
    const { pbkdf2Sync } = await import('node:crypto');
    const again = pbkdf2Sync('plum kettle orbit 42', parsed.salt, 220_000, 64, 'sha512');
    expect(again.equals(parsed.hash)).toBe(true);
  });

  it('compares passwords as NFKC text', async () => {
    const phc = await hashPassword('caf\u00e9 lantern tulip', DEFAULT_HASHING);
    expect(await verifyPassword(phc, 'cafe\u0301 lantern tulip')).toBe(true);
  });

  it('says when a hash needs re-hashing: another algorithm or other parameters', async () => {
    const argon = await hashPassword('plum kettle orbit 42', DEFAULT_HASHING);
    const pbkdf2 = await hashPassword('plum kettle orbit 42', PBKDF2);
    expect(needsRehash(argon, DEFAULT_HASHING)).toBe(false);
    expect(needsRehash(pbkdf2, PBKDF2)).toBe(false);
    expect(needsRehash(argon, PBKDF2)).toBe(true);
    expect(needsRehash(pbkdf2, DEFAULT_HASHING)).toBe(true);
    expect(needsRehash(argon, { ...DEFAULT_HASHING, argon2: { ...ARGON2_FLOOR, memoryKiB: 32768 } })).toBe(
      true,
    );
    expect(needsRehash(argon, { ...DEFAULT_HASHING, argon2: { ...ARGON2_FLOOR, timeCost: 3 } })).toBe(true);
    expect(needsRehash(pbkdf2, { ...PBKDF2, pbkdf2: { iterations: 300_000 } })).toBe(true);
    expect(needsRehash('not a hash', DEFAULT_HASHING)).toBe(true);
    expect(await verifyPassword('not a hash', 'x')).toBe(false);
    expect(await verifyPassword('$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA', 'x')).toBe(false);
  });

  it('refuses settings below the floor, from the environment too', () => {
    expect(() => checkHashing({ ...DEFAULT_HASHING, argon2: { ...ARGON2_FLOOR, memoryKiB: 19455 } })).toThrow(
      /below the floor/,
    );
    expect(() => checkHashing({ ...DEFAULT_HASHING, argon2: { ...ARGON2_FLOOR, timeCost: 1 } })).toThrow(
      /floor/,
    );
    expect(() => checkHashing({ ...PBKDF2, pbkdf2: { iterations: PBKDF2_FLOOR - 1 } })).toThrow(/floor/);
    expect(() => peopleConfigFromEnv({ LETHE_PBKDF2_ITERATIONS: '200000' })).toThrow(/below the floor/);
    expect(() => peopleConfigFromEnv({ LETHE_PASSWORD_HASH: 'md5' })).toThrow(/argon2id or pbkdf2/);
    expect(peopleConfigFromEnv({ LETHE_PASSWORD_HASH: 'pbkdf2' }).hashing.algorithm).toBe('pbkdf2');
    const config = peopleConfigFromEnv({});
    expect(config.hashing).toEqual(DEFAULT_HASHING);
    expect(config.sessionIdleMs).toBe(30 * 60_000);
    expect(config.sessionAbsoluteMs).toBe(8 * 3_600_000);
  });
});

describe('password policy', () => {
  it('8 to 256 characters, counted as characters, with no composition rules', () => {
    expect(passwordProblem('seven77')).toMatch(/at least 8/);
    expect(passwordProblem('zebra lamp')).toBeUndefined(); // lower case and a space: fine
    expect(passwordProblem('🦓🦓🦓🦓🦓🦓🦓🦓')).toBeUndefined(); // 8 characters, 32 bytes
    expect(passwordProblem('🦓🦓🦓🦓🦓🦓🦓')).toMatch(/at least 8/);
    expect(passwordProblem('x'.repeat(128) + ' horse')).toBeUndefined();
    expect(passwordProblem('y'.repeat(257))).toMatch(/at most 256/);
    expect(passwordProblem('tab\there ok')).toMatch(/control characters/);
  });

  it('refuses passwords on the shipped common-password list, whatever their case', () => {
    for (const common of [
      'password',
      'Password1',
      'qwertyuiop',
      'iloveyou',
      'sunshine',
      'TRUSTNO1',
      '1qaz2wsx',
    ]) {
      expect(passwordProblem(common), common).toMatch(/commonly used/);
    }
    expect(() => checkPassword('baseball')).toThrow(PasswordRejected);
    expect(commonPasswordCount()).toBeGreaterThan(15_000);
  });

  it('refuses the e-mail address as the password', () => {
    expect(passwordProblem('ada.lovelace@example.test', 'Ada.Lovelace@example.test')).toMatch(/e-mail/);
    expect(passwordProblem('ada.lovelace', 'ada.lovelace@example.test')).toMatch(/e-mail/);
  });

  it('ships the list the generator makes from its pinned source', () => {
    execFileSync(process.execPath, [join(root, 'scripts', 'common-passwords.mjs'), '--check'], {
      stdio: 'pipe',
    });
  });
});

await describeStores('re-hashing at sign-in', (kind) => {
  const ctx = useStore(kind);

  it('upgrades a hash made with other settings when its owner signs in, and only then', async () => {
    const base = peopleConfigFromEnv({ LETHE_PASSWORD_HASH: 'pbkdf2' });
    const audit = new AuditLog(ctx.store.db);
    const old = new People(ctx.store, audit, base);
    const email = `rehash-${Date.now()}@example.test`;
    const user = await old.createUser({ email, password: 'plum kettle orbit 42' }, 'test');
    expect(user.password_hash).toMatch(/^\$pbkdf2-sha512\$i=220000\$/);

    // The deployment moves to Argon2id: a wrong password changes nothing; the right one re-hashes.
    const upgraded = new People(ctx.store, audit, peopleConfigFromEnv({}));
    expect((await upgraded.signIn(email, 'wrong password here', '192.0.2.1')).ok).toBe(false);
    expect((await ctx.store.users.byId(user.id))!.password_hash).toBe(user.password_hash);
    const result = await upgraded.signIn(email, 'plum kettle orbit 42', '192.0.2.1');
    expect(result.ok && result.rehashed).toBe(true);
    const argon = (await ctx.store.users.byId(user.id))!.password_hash!;
    expect(argon).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);

    // Stronger Argon2id parameters: re-hashed again; the same parameters: left alone.
    const stronger = new People(
      ctx.store,
      audit,
      peopleConfigFromEnv({ LETHE_ARGON2_MEMORY_KIB: '24576', LETHE_ARGON2_TIME_COST: '3' }),
    );
    const again = await stronger.signIn(email, 'plum kettle orbit 42', '192.0.2.1');
    expect(again.ok && again.rehashed).toBe(true);
    const strongerHash = (await ctx.store.users.byId(user.id))!.password_hash!;
    expect(strongerHash).toMatch(/^\$argon2id\$v=19\$m=24576,t=3,p=1\$/);
    const same = await stronger.signIn(email, 'plum kettle orbit 42', '192.0.2.1');
    expect(same.ok && same.rehashed).toBe(false);
    expect((await ctx.store.users.byId(user.id))!.password_hash).toBe(strongerHash);
    // The audit log says so, with ids only.
    const entries = await ctx.store.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'signin.succeeded')
      .where('actor', '=', `user:${user.id}`)
      .execute();
    expect(entries.map((entry) => JSON.parse(entry.details) as unknown)).toEqual([
      { rehashed: true },
      { rehashed: true },
      { rehashed: false },
    ]);
  });

  it('refuses a common password when a user is made', async () => {
    const people = new People(ctx.store, new AuditLog(ctx.store.db), peopleConfigFromEnv({}));
    await expect(
      people.createUser({ email: `c-${Date.now()}@example.test`, password: 'iloveyou' }, 'test'),
    ).rejects.toThrow(PasswordRejected);
  });
});
