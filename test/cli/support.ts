/**
 * Spawn the built CLI (`node bin/lethe.js …`) and collect its exit code and output. The build
 * comes from `npm run build` (`npm test` runs it first as pretest).
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, expect } from 'vitest';
import { tempDir } from '../helpers/engine.js';

export const root = join(import.meta.dirname, '..', '..');
export const bin = join(root, 'bin', 'lethe.js');

if (!existsSync(join(root, 'dist', 'main.js'))) {
  throw new Error('the CLI is not built: run `npm run build` first (the test setup builds it)');
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  cwd?: string;
  /** Added to the environment (undefined removes a variable). */
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  /** Written to standard input, which is then closed (empty by default). */
  input?: string;
}

/** Run `lethe …args` to completion (killed after the timeout). */
export function lethe(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const env: Record<string, string | undefined> = { ...process.env, LETHE_DEBUG: undefined, NO_COLOR: '1' };
  for (const [key, value] of Object.entries(options.env ?? {})) env[key] = value;
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: options.cwd ?? root,
      env: env as NodeJS.ProcessEnv,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 30_000,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** A user error never prints a stack trace. */
export function expectNoStackTrace(result: CliResult): void {
  expect(result.stderr).not.toMatch(/^\s+at /m);
  expect(result.stdout).not.toMatch(/^\s+at /m);
  expect(result.stderr).not.toMatch(/internal error/);
}

/** Lines of text without the final empty one. */
export function lines(text: string): string[] {
  const all = text.split('\n');
  if (all[all.length - 1] === '') all.pop();
  return all;
}

/** A fresh temporary folder for every test of the calling file; returns a getter for its path. */
export function useTempDir(): () => string {
  let dir: { path: string; cleanup: () => void } | undefined;
  beforeEach(() => {
    dir = tempDir('lethe-cli-');
  });
  afterEach(() => {
    dir?.cleanup();
    dir = undefined;
  });
  return () => {
    if (!dir) throw new Error('no temp dir outside a test');
    return dir.path;
  };
}

/** Run `fn` with a fresh temporary folder, removed afterwards (safe in concurrent tests). */
export async function inTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = tempDir('lethe-cli-');
  try {
    return await fn(dir.path);
  } finally {
    dir.cleanup();
  }
}

/** Write files (path relative to `dir` → text), creating folders. */
export function files(dir: string, contents: Record<string, string>): void {
  for (const [path, text] of Object.entries(contents)) {
    const file = join(dir, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
}

/** Copy an example folder to `target`, without any out/ or .lethe/ left from earlier runs. */
export function copyExample(name: string, target: string): void {
  cpSync(join(root, 'examples', name), target, {
    recursive: true,
    filter: (source) => {
      const rel = source.slice(join(root, 'examples', name).length);
      return !/^[/\\](out|\.lethe)([/\\]|$)/.test(rel);
    },
  });
}

/** The parsed `--json` result of `lethe run`. */
export interface RunJson {
  runId: string;
  flow: string;
  status: string;
  durationMs: number;
  peakRssBytes: number;
  steps: {
    id: string;
    command: string;
    status: string;
    rowsIn: number;
    rowsOut: number;
    durationMs: number;
  }[];
  warnings: { step: string; message: string }[];
  error?: { code: string; message: string };
  response?: Record<string, unknown>[];
}

export function runJson(result: CliResult): RunJson {
  return JSON.parse(result.stdout) as RunJson;
}
