/**
 * Scanning every byte a server wrote for canaries: the files of its data dir (the SQLite store
 * with its -wal, -shm and -journal, the master key, workspace files), the rows of every table
 * of its PostgreSQL schema, its log lines, and the files that appeared or changed in the OS
 * temp dirs while a test ran. Used by the confidential-flow, runtime-credential and log-access
 * tests: a canary planted in a payload must turn up where a standard flow keeps it (which
 * proves the scan looks in the right places) and nowhere for a flow that keeps nothing.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import pg from 'pg';
import { expect } from 'vitest';

/** A canary: letters and digits only, so no encoding (JSON, URL, SQL) can hide it. */
export function canary(label: string): string {
  return `CANARY${label.replace(/[^A-Za-z0-9]/g, '')}x${randomBytes(8).toString('hex')}`;
}

/** An e-mail address that is a canary too. */
export function canaryEmail(): string {
  return `canary-${randomBytes(6).toString('hex')}@example.com`;
}

/** Where a blob came from, for messages. */
export interface Blob {
  where: string;
  bytes: Buffer;
}

/** The largest file read whole; larger ones are read in slices. */
const SLICE = 64 * 1024 * 1024;

function readSafely(file: string): Buffer | undefined {
  try {
    const bytes = readFileSync(file);
    return bytes.length > SLICE * 4 ? bytes.subarray(0, SLICE * 4) : bytes;
  } catch {
    return undefined; // gone meanwhile, or not ours to read
  }
}

/** Every regular file under a folder (recursively), with size and modification time. */
export function listFiles(root: string): Map<string, { size: number; mtimeMs: number }> {
  const found = new Map<string, { size: number; mtimeMs: number }>();
  const walk = (dir: string, depth: number) => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = join(dir, entry);
      let stat;
      try {
        stat = lstatSync(path);
      } catch {
        continue;
      }
      if (stat.isDirectory() && depth < 12) walk(path, depth + 1);
      else if (stat.isFile()) found.set(path, { size: stat.size, mtimeMs: stat.mtimeMs });
    }
  };
  walk(root, 0);
  return found;
}

/** The OS temp dirs (SQLite prefers /var/tmp when TMPDIR is not set). */
export function tempDirs(): string[] {
  return [...new Set([tmpdir(), '/tmp', '/var/tmp', '/usr/tmp'])];
}

/** A picture of the temp dirs, to tell later which files are new or changed. */
export function snapshotTemp(): Map<string, { size: number; mtimeMs: number }> {
  const all = new Map<string, { size: number; mtimeMs: number }>();
  for (const dir of tempDirs()) for (const [path, stat] of listFiles(dir)) all.set(path, stat);
  return all;
}

/** Files in the temp dirs that appeared or changed since the snapshot, except under `skip`. */
export function changedTempFiles(
  before: Map<string, { size: number; mtimeMs: number }>,
  skip: readonly string[] = [],
): Blob[] {
  const blobs: Blob[] = [];
  for (const [path, stat] of snapshotTemp()) {
    if (skip.some((folder) => !relative(folder, path).startsWith('..'))) continue;
    const earlier = before.get(path);
    if (earlier && earlier.size === stat.size && earlier.mtimeMs === stat.mtimeMs) continue;
    const bytes = readSafely(path);
    if (bytes) blobs.push({ where: `temp file ${path}`, bytes });
  }
  return blobs;
}

/** Every file under a folder, except those `exclude` says are the user's own output. */
export function folderBlobs(root: string, exclude: (path: string) => boolean = () => false): Blob[] {
  const blobs: Blob[] = [];
  for (const path of listFiles(root).keys()) {
    if (exclude(path)) continue;
    const bytes = readSafely(path);
    if (bytes) blobs.push({ where: `file ${relative(root, path)}`, bytes });
  }
  return blobs;
}

/** The schema a PostgreSQL URL's connections use (the test servers' `options=-c search_path=`). */
export function schemaOf(url: string): string {
  const options = new URL(url).searchParams.get('options') ?? '';
  const match = /search_path=([A-Za-z0-9_]+)/.exec(options);
  if (!match) throw new Error(`no search_path in ${url}`);
  return match[1]!;
}

/** Every row of every table in a PostgreSQL schema, as JSON text (one blob per table). */
export async function postgresBlobs(url: string): Promise<Blob[]> {
  const schema = schemaOf(url);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const tables = await client.query<{ table_name: string }>(
      `select table_name from information_schema.tables where table_schema = $1 and table_type = 'BASE TABLE'`,
      [schema],
    );
    expect(tables.rows.length, 'the schema has tables').toBeGreaterThan(5);
    const blobs: Blob[] = [];
    for (const { table_name: table } of tables.rows) {
      const rows = await client.query<{ row: string }>(
        `select row_to_json(t)::text as row from "${schema}"."${table}" t`,
      );
      blobs.push({ where: `table ${table}`, bytes: Buffer.from(rows.rows.map((r) => r.row).join('\n')) });
    }
    return blobs;
  } finally {
    await client.end();
  }
}

/** Blobs of text (log lines, API answers, a child's output). */
export function textBlob(where: string, text: string | readonly string[]): Blob {
  return { where, bytes: Buffer.from(typeof text === 'string' ? text : text.join('\n')) };
}

/** Where a canary turns up. */
export function findCanary(blobs: readonly Blob[], needle: string): string[] {
  const bytes = Buffer.from(needle);
  return blobs.filter((blob) => blob.bytes.includes(bytes)).map((blob) => blob.where);
}

/** The canary is nowhere in the blobs. */
export function expectNowhere(blobs: readonly Blob[], needle: string, label: string): void {
  expect(findCanary(blobs, needle), `${label} (${needle}) must appear nowhere`).toEqual([]);
}

/** The canary is somewhere in the blobs (so the scan provably sees what is written). */
export function expectSomewhere(blobs: readonly Blob[], needle: string, label: string): string[] {
  const found = findCanary(blobs, needle);
  expect(found.length, `${label} (${needle}) must be found by the scan`).toBeGreaterThan(0);
  return found;
}
