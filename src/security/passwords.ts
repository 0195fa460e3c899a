/**
 * Passwords (SPEC §7): hashed with Argon2id by default (OWASP floor m = 19 MiB, t = 2, p = 1)
 * or PBKDF2-HMAC-SHA512 with at least 220,000 iterations (the FIPS option), both stored as PHC
 * strings, so a hash says how it was made and a sign-in can re-hash it when the deployment's
 * settings have moved on. Argon2 comes from @node-rs/argon2 (the Rust `argon2` crate, prebuilt);
 * PBKDF2 from node:crypto. Nothing here is home-made cryptography: this file only formats and
 * compares.
 *
 * The policy is NIST SP 800-63B / ASVS 5.0: 8 to 256 characters, anything printable (spaces and
 * emoji welcome), no composition rules, and not on the list of common passwords shipped in
 * the package (common-passwords.ts) nor the account's own e-mail address.
 */
import { hash as argon2Hash, verify as argon2Verify, type Algorithm } from '@node-rs/argon2';
import { pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { LetheError } from '../errors/index.js';
import { isCommonPassword } from './common-passwords.js';
import type { PasswordHashing } from './people-config.js';

const pbkdf2Async = promisify(pbkdf2);

export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 256;

// Algorithm.Argon2id: an ambient const enum, which isolatedModules cannot read by name.
const ARGON2ID = 2 as Algorithm;
const PBKDF2_ID = 'pbkdf2-sha512';
const SALT_BYTES = 16;
const PBKDF2_KEY_BYTES = 64;

/** Passwords are compared as NFKC text (SP 800-63B), so the same password typed on any device matches. */
function normalize(password: string): string {
  return password.normalize('NFKC');
}

/** PHC's B64: standard base64 without padding. */
const b64 = (bytes: Buffer) => bytes.toString('base64').replace(/=+$/, '');
const unb64 = (text: string) => Buffer.from(text, 'base64');

export interface ParsedPhc {
  id: string;
  version?: number;
  params: Record<string, number>;
  salt: Buffer;
  hash: Buffer;
}

/** `$id[$v=version][$param=value,…]$salt$hash`, or undefined when it is not one. */
export function parsePhc(phc: string): ParsedPhc | undefined {
  const parts = phc.split('$');
  if (parts.length < 5 || parts[0] !== '') return undefined;
  const id = parts[1]!;
  let index = 2;
  let version: number | undefined;
  if (parts[index]?.startsWith('v=')) {
    version = Number(parts[index]!.slice(2));
    index++;
  }
  if (parts.length !== index + 3) return undefined;
  const params: Record<string, number> = {};
  for (const pair of parts[index]!.split(',')) {
    const [key, value] = pair.split('=');
    if (!key || value === undefined || !/^\d+$/.test(value)) return undefined;
    params[key] = Number(value);
  }
  const salt = unb64(parts[index + 1]!);
  const hash = unb64(parts[index + 2]!);
  if (salt.length === 0 || hash.length === 0) return undefined;
  return { id, ...(version === undefined ? {} : { version }), params, salt, hash };
}

/** Hash a password with the deployment's settings; the result is a PHC string. */
export async function hashPassword(password: string, settings: PasswordHashing): Promise<string> {
  const text = normalize(password);
  if (settings.algorithm === 'pbkdf2') {
    const salt = randomBytes(SALT_BYTES);
    const { iterations } = settings.pbkdf2;
    const key = await pbkdf2Async(text, salt, iterations, PBKDF2_KEY_BYTES, 'sha512');
    return `$${PBKDF2_ID}$i=${iterations}$${b64(salt)}$${b64(key)}`;
  }
  const { memoryKiB, timeCost, parallelism } = settings.argon2;
  return argon2Hash(text, {
    algorithm: ARGON2ID,
    memoryCost: memoryKiB,
    timeCost,
    parallelism,
    outputLen: 32,
    salt: randomBytes(SALT_BYTES),
  });
}

/** Whether `password` matches the PHC string (false for a string this module did not make). */
export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  const parsed = parsePhc(phc);
  if (!parsed) return false;
  const text = normalize(password);
  if (parsed.id === PBKDF2_ID) {
    const iterations = parsed.params.i;
    if (!iterations || iterations < 1) return false;
    const key = await pbkdf2Async(text, parsed.salt, iterations, parsed.hash.length, 'sha512');
    return timingSafeEqual(key, parsed.hash);
  }
  if (parsed.id === 'argon2id') {
    try {
      return await argon2Verify(phc, text);
    } catch {
      return false;
    }
  }
  return false;
}

/** Whether a stored hash was made with other settings than the deployment's (then re-hash at sign-in). */
export function needsRehash(phc: string, settings: PasswordHashing): boolean {
  const parsed = parsePhc(phc);
  if (!parsed) return true;
  if (settings.algorithm === 'pbkdf2') {
    return parsed.id !== PBKDF2_ID || parsed.params.i !== settings.pbkdf2.iterations;
  }
  const { memoryKiB, timeCost, parallelism } = settings.argon2;
  return (
    parsed.id !== 'argon2id' ||
    parsed.version !== 19 ||
    parsed.params.m !== memoryKiB ||
    parsed.params.t !== timeCost ||
    parsed.params.p !== parallelism
  );
}

/**
 * Why a new password is refused, in words for the person choosing it; undefined when it is
 * acceptable. Length counts characters (code points), not bytes.
 */
export function passwordProblem(password: string, email?: string): string | undefined {
  const text = normalize(password);
  const length = [...text].length;
  if (length < PASSWORD_MIN_LENGTH)
    return `the password must have at least ${PASSWORD_MIN_LENGTH} characters`;
  if (length > PASSWORD_MAX_LENGTH) return `the password must have at most ${PASSWORD_MAX_LENGTH} characters`;
  if (/[\u0000-\u001f\u007f]/.test(text)) return 'the password may not contain control characters';
  const lower = text.toLowerCase();
  if (isCommonPassword(lower)) {
    return 'this password is on a list of commonly used passwords; choose another (a few unrelated words make a good one)';
  }
  if (email) {
    const address = email.toLowerCase();
    const local = address.split('@')[0] ?? '';
    if (lower === address || (local.length >= PASSWORD_MIN_LENGTH && lower === local)) {
      return 'the password may not be the e-mail address';
    }
  }
  return undefined;
}

/** A new password the policy refuses (the API answers 400 WEAK_PASSWORD). */
export class PasswordRejected extends LetheError {
  constructor(message: string) {
    super('USAGE', message, {
      hint: `at least ${PASSWORD_MIN_LENGTH} characters, not a common password; no other rules`,
    });
  }
}

/** Throw PasswordRejected when the password breaks the policy. */
export function checkPassword(password: string, email?: string): void {
  const problem = passwordProblem(password, email);
  if (problem) throw new PasswordRejected(problem);
}
