/**
 * The list of common passwords a new password is checked against (SPEC §7), shipped in the
 * package (common-passwords-data.ts, made by scripts/common-passwords.mjs) and unpacked into a
 * set on first use. Entries are NFKC, lower case, 8+ characters.
 */
import { brotliDecompressSync } from 'node:zlib';
import { COMMON_PASSWORD_COUNT, COMMON_PASSWORDS_BROTLI_BASE64 } from './common-passwords-data.js';

let list: Set<string> | undefined;

function commonPasswords(): Set<string> {
  if (!list) {
    const text = brotliDecompressSync(Buffer.from(COMMON_PASSWORDS_BROTLI_BASE64, 'base64')).toString('utf8');
    list = new Set(text.split('\n'));
    if (list.size !== COMMON_PASSWORD_COUNT) throw new Error('the common-password list is damaged');
  }
  return list;
}

/** Whether a (normalised, lower-case) password is on the list. */
export function isCommonPassword(lowerCase: string): boolean {
  return commonPasswords().has(lowerCase);
}

/** How many passwords the list holds. */
export function commonPasswordCount(): number {
  return commonPasswords().size;
}
