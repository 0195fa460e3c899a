/**
 * The subject of an erasure request — `email:x@y.com`, `account:…` or `key:…` — and how it is
 * recognised without being kept, and found wherever it was stored.
 *
 * - **Normalised**: Unicode NFC, trimmed; e-mail addresses lower-cased (they are matched
 *   without regard to case); account ids and keys kept as given (matched exactly).
 * - **Hashed**: HMAC-SHA-256 over workspace, kind and value, keyed by a key derived (HKDF) from
 *   the deployment's master key. A repeated request for the same subject has the same hash, so
 *   it is recognised once the subject itself is gone; without the master key the hash cannot
 *   be tested against guesses, and the same person has unrelated hashes in two workspaces.
 * - **Pseudonym**: `erased:<first 12 hex digits of the hash>` replaces the subject where a
 *   record must stay (legal hold, flow definitions, connection settings).
 * - **Matched** as a whole value or inside larger text (JSON, YAML, form bodies, error
 *   messages), in its plain, JSON-escaped and URL-encoded forms, and inside base64 text
 *   (binary webhook bodies), with boundaries so `ann@x.com` is not found in `joann@x.com`.
 */
import { createHmac, hkdfSync } from 'node:crypto';
import { LetheError } from '../errors/index.js';

export const SUBJECT_KINDS = ['email', 'account', 'key'] as const;
export type SubjectKind = (typeof SUBJECT_KINDS)[number];

export interface Subject {
  kind: SubjectKind;
  /** The normalised value (lower-case for e-mail addresses). */
  value: string;
}

/** Shorter account ids or keys would match too much unrelated data. */
export const MIN_ID_LENGTH = 3;
const MAX_VALUE_LENGTH = 320;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/u;

/** Parse `kind:value` (a bare e-mail address is taken as `email:`). Throws USAGE when invalid. */
export function parseSubject(text: string): Subject {
  const trimmed = text.normalize('NFC').trim();
  const match = /^(email|account|key):(.*)$/su.exec(trimmed);
  let kind: SubjectKind;
  let value: string;
  if (match) {
    kind = match[1] as SubjectKind;
    value = match[2]!.trim();
  } else if (EMAIL.test(trimmed)) {
    kind = 'email';
    value = trimmed;
  } else {
    throw new LetheError('USAGE', 'the subject must be email:<address>, account:<id> or key:<value>', {
      hint: 'e.g. email:ann@example.com',
    });
  }
  if (value.length > MAX_VALUE_LENGTH)
    throw new LetheError('USAGE', `the subject is longer than ${MAX_VALUE_LENGTH} characters`);
  if (kind === 'email') {
    value = value.toLowerCase();
    if (!EMAIL.test(value))
      throw new LetheError('USAGE', 'the subject is not an e-mail address', {
        hint: 'e.g. email:ann@example.com',
      });
  } else if (value.length < MIN_ID_LENGTH || /^\s*$/u.test(value)) {
    throw new LetheError(
      'USAGE',
      `an ${kind === 'account' ? 'account id' : 'key'} to erase must have at least ${MIN_ID_LENGTH} characters`,
      { hint: 'a shorter value would match unrelated data' },
    );
  }
  return { kind, value };
}

export function formatSubject(subject: Subject): string {
  return `${subject.kind}:${subject.value}`;
}

/** The key that hashes subjects: derived from the master key, so stable for a deployment. */
export function deriveSubjectKey(masterKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, 'lethe/erasure', 'lethe/erasure-subject-hash/v1', 32));
}

/** HMAC-SHA-256 of the normalised subject in a workspace, as hex. */
export function subjectHash(key: Buffer, workspaceId: string, subject: Subject): string {
  return createHmac('sha256', key)
    .update(JSON.stringify(['lethe/erasure-subject/v1', workspaceId, subject.kind, subject.value]))
    .digest('hex');
}

/** What replaces the subject in records that must stay. */
export function pseudonymOf(hash: string): string {
  return `erased:${hash.slice(0, 12)}`;
}

/** One way the subject may be written in stored text, for the database's LIKE prefilter. */
export interface SubjectForm {
  text: string;
  caseInsensitive: boolean;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Characters that continue an address or id: a match must not have them on either side. */
const BEFORE = String.raw`(?:(?<![A-Za-z0-9._+\-])|(?<=\\[nrtbf])|(?<=%[0-9A-Fa-f]{2}))`;
const AFTER = String.raw`(?![A-Za-z0-9_\-]|\.[A-Za-z0-9])`;
const EDGE_START = /^[A-Za-z0-9._+-]/;
const EDGE_END = /[A-Za-z0-9_.-]$/;

function bounded(form: string): string {
  return `${EDGE_START.test(form) ? BEFORE : ''}${escapeRegExp(form)}${EDGE_END.test(form) ? AFTER : ''}`;
}

/** Forms of `value` as text: plain, JSON-escaped, URL-encoded (both flavours). */
function textForms(value: string): string[] {
  const forms = new Set<string>([value]);
  forms.add(JSON.stringify(value).slice(1, -1));
  const uri = encodeURIComponent(value);
  forms.add(uri);
  forms.add(uri.replace(/%20/g, '+'));
  return [...forms];
}

/**
 * The parts of base64 text that encode `bytes` whatever its offset (mod 3) in the data: the
 * characters wholly inside the subject's bits.
 */
function base64Cores(bytes: Buffer): string[] {
  const cores: string[] = [];
  for (let filler = 0; filler < 3; filler++) {
    const encoded = Buffer.concat([Buffer.alloc(filler), bytes]).toString('base64');
    const start = Math.ceil((8 * filler) / 6);
    const end = Math.floor((8 * (filler + bytes.length)) / 6);
    if (end - start >= 4) cores.push(encoded.slice(start, end));
  }
  return cores;
}

const BASE64_TOKEN = /[A-Za-z0-9+/]{8,}={0,2}/g;

/** Finds and replaces one subject in text. */
export class SubjectMatcher {
  /** Forms for the database prefilter (a superset: the matcher decides). */
  readonly forms: readonly SubjectForm[];
  private readonly text: RegExp;
  private readonly binary: RegExp;
  private readonly cores: readonly string[];

  constructor(
    readonly subject: Subject,
    readonly pseudonym: string,
  ) {
    const caseInsensitive = subject.kind === 'email';
    const flags = caseInsensitive ? 'giu' : 'gu';
    const texts = textForms(subject.value);
    this.text = new RegExp(texts.map(bounded).join('|'), flags);
    // Binary data, seen byte for byte (latin1): the subject's UTF-8 bytes.
    const latin1 = Buffer.from(subject.value, 'utf8').toString('latin1');
    this.binary = new RegExp(bounded(latin1), caseInsensitive ? 'gi' : 'g');
    // Base64 is matched for the normalised value as written (lower case for e-mail addresses).
    this.cores = base64Cores(Buffer.from(subject.value, 'utf8'));
    this.forms = [
      ...texts.map((text) => ({ text, caseInsensitive })),
      ...this.cores.map((text) => ({ text, caseInsensitive: false })),
    ];
  }

  /** Whether the subject occurs in the text. */
  test(text: string | null | undefined): boolean {
    if (text === null || text === undefined || text === '') return false;
    return this.replace(text).count > 0;
  }

  /**
   * The text with every occurrence replaced by the pseudonym, and how many there were. JSON
   * stays JSON: where a replacement would break it (a number that is the subject), the value
   * becomes the pseudonym as a string.
   */
  replace(text: string): { text: string; count: number } {
    const flat = this.replaceFlat(text);
    if (flat.count === 0) return flat;
    const first = text.trimStart()[0];
    if (first !== '{' && first !== '[') return flat;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return flat; // not JSON to begin with
    }
    try {
      JSON.parse(flat.text);
      return flat; // still JSON, formatting kept
    } catch {
      // Walk the values instead.
    }
    let count = 0;
    const walk = (value: unknown): unknown => {
      if (typeof value === 'string') {
        const replaced = this.replaceFlat(value);
        count += replaced.count;
        return replaced.text;
      }
      if (typeof value === 'number') {
        if (this.replaceFlat(String(value)).count === 0) return value;
        count++;
        return this.pseudonym;
      }
      if (Array.isArray(value)) return value.map(walk);
      if (value !== null && typeof value === 'object')
        return Object.fromEntries(
          Object.entries(value).map(([key, item]) => [walk(key) as string, walk(item)]),
        );
      return value;
    };
    const walked = JSON.stringify(walk(parsed));
    return { text: walked, count };
  }

  private replaceFlat(text: string): { text: string; count: number } {
    let count = 0;
    const pseudonym = this.pseudonym;
    let result = text.replace(this.text, () => {
      count++;
      return pseudonym;
    });
    if (this.cores.length > 0 && this.cores.some((core) => result.includes(core))) {
      result = result.replace(BASE64_TOKEN, (token) => {
        if (!this.cores.some((core) => token.includes(core))) return token;
        const decoded = Buffer.from(token, 'base64').toString('latin1');
        let found = 0;
        const replaced = decoded.replace(this.binary, () => {
          found++;
          return pseudonym;
        });
        if (found === 0) return token;
        count += found;
        return Buffer.from(replaced, 'latin1').toString('base64');
      });
    }
    return { text: result, count };
  }
}
