/**
 * The settings of people and their sessions (SPEC §7 floors): how passwords are hashed, how
 * long sessions, invites and resets last, and how sign-in failures back off. From LETHE_*
 * variables; a setting below a floor stops the server from starting.
 */
import { LetheError } from '../errors/index.js';
import type { BackoffPolicy } from './throttle.js';

export type PasswordAlgorithm = 'argon2id' | 'pbkdf2';

export interface PasswordHashing {
  algorithm: PasswordAlgorithm;
  argon2: { memoryKiB: number; timeCost: number; parallelism: number };
  pbkdf2: { iterations: number };
}

/** The floors of SPEC §7; settings below them are refused when the server starts. */
export const ARGON2_FLOOR = { memoryKiB: 19 * 1024, timeCost: 2, parallelism: 1 } as const;
export const PBKDF2_FLOOR = 220_000;

export const DEFAULT_HASHING: PasswordHashing = {
  algorithm: 'argon2id',
  argon2: { ...ARGON2_FLOOR },
  pbkdf2: { iterations: PBKDF2_FLOOR },
};

/** Check settings against the floors (a deployment may go above them, never below). */
export function checkHashing(settings: PasswordHashing): void {
  const { memoryKiB, timeCost, parallelism } = settings.argon2;
  if (
    memoryKiB < ARGON2_FLOOR.memoryKiB ||
    timeCost < ARGON2_FLOOR.timeCost ||
    parallelism < ARGON2_FLOOR.parallelism
  ) {
    throw new LetheError(
      'USAGE',
      `Argon2id settings m=${memoryKiB},t=${timeCost},p=${parallelism} are below the floor m=${ARGON2_FLOOR.memoryKiB},t=${ARGON2_FLOOR.timeCost},p=${ARGON2_FLOOR.parallelism}`,
    );
  }
  if (settings.pbkdf2.iterations < PBKDF2_FLOOR) {
    throw new LetheError(
      'USAGE',
      `PBKDF2 with ${settings.pbkdf2.iterations} iterations is below the floor of ${PBKDF2_FLOOR}`,
    );
  }
}

type Env = Readonly<Record<string, string | undefined>>;

export interface PeopleConfig {
  hashing: PasswordHashing;
  /** A session unused for this long ends. */
  sessionIdleMs: number;
  /** A session ends this long after sign-in, used or not. */
  sessionAbsoluteMs: number;
  inviteTtlMs: number;
  resetTtlMs: number;
  /** Sign-in failures per account (a hash of the e-mail address). */
  accountBackoff: BackoffPolicy;
  /** Sign-in failures per client address. */
  addressBackoff: BackoffPolicy;
  /** Bearer tokens that do not check out, per client address. */
  tokenBackoff: BackoffPolicy;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

function whole(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < min || number > max) {
    throw new LetheError('USAGE', `${name} must be a whole number from ${min} to ${max}, not "${value}"`);
  }
  return number;
}

/** People settings from LETHE_PASSWORD_HASH, LETHE_SESSION_*, LETHE_LOGIN_* and friends. */
export function peopleConfigFromEnv(env: Env = process.env): PeopleConfig {
  const algorithm = (env.LETHE_PASSWORD_HASH ?? 'argon2id').toLowerCase();
  if (algorithm !== 'argon2id' && algorithm !== 'pbkdf2') {
    throw new LetheError('USAGE', 'LETHE_PASSWORD_HASH must be argon2id or pbkdf2 (the FIPS option)');
  }
  const hashing: PasswordHashing = {
    algorithm: algorithm as PasswordAlgorithm,
    argon2: {
      memoryKiB: whole(env, 'LETHE_ARGON2_MEMORY_KIB', DEFAULT_HASHING.argon2.memoryKiB, 1, 4 * 1024 * 1024),
      timeCost: whole(env, 'LETHE_ARGON2_TIME_COST', DEFAULT_HASHING.argon2.timeCost, 1, 100),
      parallelism: whole(env, 'LETHE_ARGON2_PARALLELISM', DEFAULT_HASHING.argon2.parallelism, 1, 16),
    },
    pbkdf2: {
      iterations: whole(env, 'LETHE_PBKDF2_ITERATIONS', DEFAULT_HASHING.pbkdf2.iterations, 1, 100_000_000),
    },
  };
  checkHashing(hashing);
  const lockoutMs = whole(env, 'LETHE_LOGIN_LOCKOUT_SECONDS', 900, 1, 86_400) * 1000;
  const backoff = (freeFailures: number): BackoffPolicy => ({
    freeFailures,
    baseDelayMs: 1000,
    maxDelayMs: lockoutMs,
    forgetAfterMs: Math.max(HOUR, lockoutMs),
  });
  return {
    hashing,
    sessionIdleMs: whole(env, 'LETHE_SESSION_IDLE_MINUTES', 30, 1, 24 * 60) * MINUTE,
    sessionAbsoluteMs: whole(env, 'LETHE_SESSION_ABSOLUTE_HOURS', 8, 1, 24 * 30) * HOUR,
    inviteTtlMs: whole(env, 'LETHE_INVITE_TTL_HOURS', 72, 1, 24 * 30) * HOUR,
    resetTtlMs: whole(env, 'LETHE_RESET_TTL_MINUTES', 60, 5, 24 * 60) * MINUTE,
    accountBackoff: backoff(whole(env, 'LETHE_LOGIN_FAILURES', 5, 1, 1000)),
    addressBackoff: backoff(whole(env, 'LETHE_LOGIN_ADDRESS_FAILURES', 20, 1, 100_000)),
    tokenBackoff: backoff(whole(env, 'LETHE_TOKEN_ADDRESS_FAILURES', 100, 1, 1_000_000)),
  };
}
