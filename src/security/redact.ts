/**
 * security — secret redaction: a run learns the secret values it uses (connection secrets the
 * vault decrypted, credentials given at run time) and replaces each occurrence with
 * `[redacted]` in whatever leaves the engine: stored step samples and error messages, the
 * result a webhook answers with, errors handed to callers. See docs/security.md.
 *
 * Besides the value itself, the forms it plausibly takes on the way out are hidden too: URL
 * encoding (path and query-string flavours), JSON string escaping, and base64 — at each of
 * the three byte alignments, so a password inside a Basic auth header (`user:password`
 * encoded whole) is caught without knowing the user name. All forms go into one regular
 * expression, built once after values were added: redacting is one pass over the text
 * however many secrets the run holds.
 */
import { Buffer } from 'node:buffer';
import { LetheError, LetheErrors } from '../errors/index.js';
import type { Table } from '../table/index.js';

export const REDACTED = '[redacted]';

/**
 * Shortest value redacted at all: shorter ones (a PIN of two digits, "on") would blot out
 * ordinary words and numbers everywhere, and hide next to nothing.
 */
export const MIN_REDACTED_LENGTH = 3;

/**
 * Shortest value whose base64 forms are hidden too: the part of an encoding that depends on
 * the value alone is about 4/3 of its length less three characters, and shorter fragments
 * would match unrelated base64 text by chance.
 */
export const MIN_ENCODED_LENGTH = 6;

/** Characters that mean something in a regular expression. */
const SPECIAL = /[.*+?^${}()|[\]\\/-]/g;

/**
 * The characters of `value`'s base64 encoding that do not depend on its neighbours, for each
 * of the three offsets (mod 3) the value may start at inside a longer encoded text: the first
 * characters share bits with the bytes before it, the last with the bytes after it.
 */
export function base64Cores(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const cores: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const shifted = Buffer.concat([Buffer.alloc(offset), bytes]);
    const encoded = shifted.toString('base64');
    const start = [0, 2, 3][offset]!;
    const end = Math.floor(shifted.length / 3) * 4 + (shifted.length % 3);
    const core = encoded.slice(start, end);
    cores.push(core, core.replace(/\+/g, '-').replace(/\//g, '_')); // base64url too
  }
  return cores;
}

/**
 * Values that must not be stored or shown (secrets, credentials given at run time, a
 * confidential run's parameters), and the means to take them out of text, values, tables and
 * errors.
 */
export class Redactor {
  private readonly values = new Set<string>();
  /** Every form, longest first, as one expression; rebuilt lazily after values are added. */
  private pattern: RegExp | undefined;
  /** Values given that were too short to redact, so that the run can say so (a count only). */
  tooShort = 0;

  add(value: unknown): void {
    if (typeof value === 'number' || typeof value === 'bigint') value = String(value);
    if (typeof value !== 'string') return;
    if (value.length < MIN_REDACTED_LENGTH) {
      if (value.length > 0) this.tooShort++;
      return;
    }
    // A URL given as a secret hides its parts, too: the password and each parameter's value
    // (a driver may say them on their own, and a query may read them back).
    if (value.includes('://')) {
      try {
        const url = new URL(value);
        this.add(decodeURIComponent(url.password));
        for (const part of url.searchParams.values()) this.add(part);
      } catch {
        // not a URL after all
      }
    }
    const forms = [
      value,
      encodeURIComponent(value),
      new URLSearchParams([['', value]]).toString().slice(1),
      JSON.stringify(value).slice(1, -1),
    ];
    if (value.length >= MIN_ENCODED_LENGTH) forms.push(...base64Cores(value));
    for (const form of forms) {
      if (form.length >= MIN_REDACTED_LENGTH && !this.values.has(form)) {
        this.values.add(form);
        this.pattern = undefined;
      }
    }
  }

  /** Every string value of a settings object (runtime connections: all of it is sensitive). */
  addAll(values: Readonly<Record<string, unknown>> | undefined): void {
    for (const value of Object.values(values ?? {})) this.add(value);
  }

  /** How many forms are hidden (each value has several). */
  get size(): number {
    return this.values.size;
  }

  text(text: string): string {
    if (this.values.size === 0 || text.length < MIN_REDACTED_LENGTH) return text;
    // Longest first, so that a value containing another is replaced whole.
    this.pattern ??= new RegExp(
      [...this.values]
        .sort((a, b) => b.length - a.length)
        .map((form) => form.replace(SPECIAL, '\\$&'))
        .join('|'),
      'g',
    );
    return text.replace(this.pattern, REDACTED);
  }

  /** A value with every string in it redacted (nested values and keys too); others as they are. */
  value<T>(value: T): T {
    if (this.values.size === 0) return value;
    if (typeof value === 'string') return this.text(value) as T;
    if (Array.isArray(value)) return value.map((item: unknown) => this.value(item)) as T;
    if (value !== null && typeof value === 'object') {
      const copy: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
      for (const [key, item] of Object.entries(value)) copy[this.text(key)] = this.value(item);
      return copy as T;
    }
    return value;
  }

  /** A table (a webhook's answer) with its column names and values redacted. */
  table(table: Table): Table {
    if (this.values.size === 0) return table;
    return { columns: table.columns.map((column) => this.text(column)), rows: this.value(table.rows) };
  }

  /** An error with its message (and each of several errors' messages) redacted. */
  error<E extends LetheError | LetheErrors>(error: E): E {
    if (this.values.size === 0) return error;
    if (error instanceof LetheErrors) return new LetheErrors(error.errors.map((e) => this.error(e))) as E;
    // The cause (a driver's error, say) may quote anything: it does not come along.
    const { expression, hint, column, cause: _cause, ...details } = error.details;
    const copy = new LetheError(error.code, this.text(error.message), {
      ...details,
      ...(expression === undefined ? {} : { expression: this.text(expression) }),
      ...(hint === undefined ? {} : { hint: this.text(hint) }),
      ...(column === undefined ? {} : { column: this.text(column) }),
    });
    return copy as E;
  }
}
