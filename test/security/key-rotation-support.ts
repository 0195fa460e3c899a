/** Shared by the key rotation tests. */

/** The forms a key could take if it leaked into text: hex, base64 (padded or not), base64url. */
export const keyForms = (key: Buffer): string[] => [
  key.toString('hex'),
  key.toString('base64'),
  key.toString('base64url'),
  key.toString('base64').replace(/=+$/, ''),
];
