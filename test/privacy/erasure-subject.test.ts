/** Erasure subjects: parsing, keyed hashes, and finding the subject in stored text. */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  deriveSubjectKey,
  parseSubject,
  pseudonymOf,
  SubjectMatcher,
  subjectHash,
} from '../../src/privacy/erasure-subject.js';
import { ERASURE_TABLES } from '../../src/privacy/erasure.js';
import { DATA_CLASSES } from '../../src/privacy/data-classes.js';
import { STORED_TABLES } from '../../src/store/tables.js';

const email = (text: string) => new SubjectMatcher(parseSubject(text), 'erased:0123456789ab');

describe('erasure subjects', () => {
  it('parses email, account and key subjects, normalising e-mail addresses only', () => {
    expect(parseSubject('email: Ann.Lee@Example.COM ')).toEqual({
      kind: 'email',
      value: 'ann.lee@example.com',
    });
    expect(parseSubject('ann@example.com')).toEqual({ kind: 'email', value: 'ann@example.com' });
    expect(parseSubject('account:5b10ac8d82e05b22cc7d4ef5')).toEqual({
      kind: 'account',
      value: '5b10ac8d82e05b22cc7d4ef5',
    });
    expect(parseSubject('key:Cust-1001')).toEqual({ kind: 'key', value: 'Cust-1001' });
    for (const bad of [
      '',
      'ann',
      'email:ann',
      'email:a b@c.d',
      'phone:123',
      'key:ab',
      'account:  ',
      `key:${'x'.repeat(400)}`,
    ])
      expect(() => parseSubject(bad), bad).toThrow(/subject|e-mail|characters|account|key/);
  });

  it('hashes with a deployment key: stable, per workspace, and useless without the key', () => {
    const key = deriveSubjectKey(randomBytes(32));
    const subject = parseSubject('email:ann@example.com');
    const hash = subjectHash(key, 'ws1', subject);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(subjectHash(key, 'ws1', parseSubject('email:ANN@example.com'))).toBe(hash);
    expect(subjectHash(key, 'ws2', subject)).not.toBe(hash);
    expect(subjectHash(deriveSubjectKey(randomBytes(32)), 'ws1', subject)).not.toBe(hash);
    expect(subjectHash(key, 'ws1', parseSubject('account:ann@example.com'))).not.toBe(hash);
    expect(pseudonymOf(hash)).toBe(`erased:${hash.slice(0, 12)}`);
  });

  it('finds an e-mail address in any case, whole or inside text, JSON, forms and base64', () => {
    const m = email('email:Ann@Example.com');
    const found = [
      'ann@example.com',
      'Write to ANN@example.COM.',
      '{"to":"ann@example.com","cc":["x@y.z"]}',
      '{"text":"line\\nann@example.com"}',
      'to=ann%40example.com&x=1',
      'mailto%3Aann%40example.com',
      'error at row 3: "ann@example.com" is not a number',
      Buffer.from('\x00\x01 bytes ann@example.com!').toString('base64'),
      JSON.stringify({ body: Buffer.from('hello ann@example.com').toString('base64') }),
    ];
    for (const text of found) {
      expect(m.test(text), text).toBe(true);
      const { text: replaced, count } = m.replace(text);
      expect(count, text).toBeGreaterThan(0);
      expect(m.test(replaced), replaced).toBe(false);
      expect(replaced.toLowerCase()).not.toContain('ann@example.com');
      expect(replaced.toLowerCase()).not.toContain('ann%40example.com');
    }
    // Valid JSON stays valid JSON.
    expect(JSON.parse(m.replace('{"to":"ann@example.com"}').text)).toEqual({ to: 'erased:0123456789ab' });
    // Base64 stays decodable, with the pseudonym in place of the subject.
    const b64 = m.replace(Buffer.from('hello ann@example.com').toString('base64')).text;
    expect(Buffer.from(b64, 'base64').toString()).toBe('hello erased:0123456789ab');
  });

  it('does not find other people whose address merely contains the subject', () => {
    const m = email('email:ann@example.com');
    for (const text of [
      'joann@example.com',
      'ann@example.community',
      'ann@example.com.au',
      'j.ann@example.com',
      'ann@example.co',
      'nothing here',
    ])
      expect(m.test(text), text).toBe(false);
  });

  it('matches account ids and keys exactly, case and all', () => {
    const m = new SubjectMatcher(parseSubject('key:Cust-1001'), 'erased:x');
    for (const text of ['Cust-1001', '{"key":"Cust-1001"}', 'id=Cust-1001;', 'row Cust-1001.'])
      expect(m.test(text), text).toBe(true);
    for (const text of ['cust-1001', 'Cust-10010', 'XCust-1001', 'Cust-1001-2'])
      expect(m.test(text), text).toBe(false);
    const n = new SubjectMatcher(parseSubject('key:12345'), 'erased:x');
    expect(JSON.parse(n.replace('{"id":12345,"other":123456}').text)).toEqual({
      id: 'erased:x',
      other: 123456,
    });
    expect(n.replace('id: 12345').text).toBe('id: erased:x');
  });

  it('searches every table column that may hold personal data', () => {
    for (const [table, stored] of Object.entries(STORED_TABLES)) {
      if (table === 'erasure_requests') continue; // the request itself: its subject goes on completion
      const handler = ERASURE_TABLES.find((entry) => entry.table === table);
      for (const column of stored.personalColumns) {
        expect(handler, `${table}.${column} is never searched for a subject`).toBeDefined();
        expect(handler!.columns).toContain(column);
      }
      if (handler) expect(handler.dataClass).toBe(stored.dataClass);
    }
    for (const handler of ERASURE_TABLES)
      expect(DATA_CLASSES[handler.dataClass].mayHoldPersonalData).toBe(true);
  });
});
