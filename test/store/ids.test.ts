import { describe, expect, it } from 'vitest';
import { LetheError } from '../../src/errors/index.js';
import { decodeCursor, encodeCursor, newId, pageLimit, toPage } from '../../src/store/ids.js';

describe('ids and pages', () => {
  it('ids are 28 hex digits that sort by creation time', () => {
    const early = newId(1_700_000_000_000);
    const late = newId(1_700_000_000_001);
    expect(early).toMatch(/^[0-9a-f]{28}$/);
    expect(early.slice(0, 12)).toBe((1_700_000_000_000).toString(16).padStart(12, '0'));
    expect(early < late).toBe(true);
    expect(newId(5)).not.toBe(newId(5));
  });

  it('a cursor round-trips, and anything else is a clear error', () => {
    const id = newId();
    expect(decodeCursor(encodeCursor(id))).toBe(id);
    expect(decodeCursor(undefined)).toBeUndefined();
    expect(decodeCursor('')).toBeUndefined();
    for (const bad of [Buffer.from('\u0000').toString('base64url'), encodeCursor('x'.repeat(201)), '!!!']) {
      expect(() => decodeCursor(bad)).toThrow(
        new LetheError('USAGE', 'invalid cursor: pass the "next" value of the previous page'),
      );
    }
  });

  it('toPage keeps limit rows and points at the last one', () => {
    expect(toPage(['a', 'b'], 2, (x) => x)).toEqual({ items: ['a', 'b'], next: null });
    expect(toPage(['a', 'b', 'c'], 2, (x) => x)).toEqual({ items: ['a', 'b'], next: encodeCursor('b') });
  });

  it('pageLimit defaults to 50 and accepts 1..500', () => {
    expect(pageLimit(undefined)).toBe(50);
    expect(pageLimit(1)).toBe(1);
    expect(pageLimit(500)).toBe(500);
    for (const bad of [0, 501, 1.5, -1, Number.NaN]) {
      expect(() => pageLimit(bad)).toThrow('limit must be a whole number from 1 to 500');
    }
  });
});
