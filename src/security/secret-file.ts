/**
 * security — files that hold key material (the keystore, the master key file): always replaced
 * whole and atomically (written with mode 0600 to a temporary file beside the target, synced,
 * renamed over it, the folder synced), and changed only under a lock file, so two processes
 * never lose each other's changes and nobody ever reads half a file.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LetheError } from '../errors/index.js';

export interface LockOptions {
  /** How long to wait for another's lock before giving up. */
  timeoutMs: number;
  /** A lock file older than this was left by a process that died; it is removed. */
  staleMs: number;
  /** For messages: "keystore", "master key file". */
  what: string;
  /** The hint when the file's folder does not exist. */
  missingFolderHint: string;
}

/** The file as a stamp that changes whenever it is replaced or changed; undefined when absent. */
export function fileStamp(path: string): string | undefined {
  try {
    const stats = statSync(path, { bigint: true });
    return `${stats.ino}/${stats.size}/${stats.mtimeNs}`;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Replace `path` with `text` atomically, mode 0600. */
export function writeSecretFile(path: string, text: string): void {
  const temporary = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(temporary, path);
  } catch (error) {
    if (existsSync(temporary)) unlinkSync(temporary);
    throw error;
  }
  // The rename itself must survive a power loss.
  try {
    const dir = openSync(dirname(path), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  } catch {
    // Some file systems cannot sync a directory; the rename is still atomic.
  }
}

/**
 * Remove temporary files a writer of `path` left when it died between writing and renaming
 * (they may hold key material). Call only while holding the lock: no live writer has one then.
 */
export function removeLeftovers(path: string): void {
  const prefix = `${basename(path)}.`;
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return;
  }
  for (const name of names) {
    if (name.startsWith(prefix) && name.endsWith('.tmp')) {
      try {
        unlinkSync(join(dirname(path), name));
      } catch {
        // Gone already.
      }
    }
  }
}

/** Take `<path>.lock` (made exclusively); a lock older than staleMs is taken over. Returns release. */
export async function lockFile(path: string, options: LockOptions): Promise<() => void> {
  const lockPath = `${path}.lock`;
  const deadline = Date.now() + options.timeoutMs;
  for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
    try {
      const fd = openSync(lockPath, 'wx', 0o600);
      writeSync(fd, `${process.pid} ${new Date().toISOString()}\n`);
      closeSync(fd);
      return () => {
        try {
          unlinkSync(lockPath);
        } catch {
          // Already gone (taken over as stale): nothing to do.
        }
      };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        throw new LetheError('USAGE', `the ${options.what}'s folder ${dirname(path)} does not exist`, {
          hint: options.missingFolderHint,
        });
      }
      if (code !== 'EEXIST') throw error;
    }
    try {
      if (Date.now() - statSync(lockPath).mtimeMs > options.staleMs) {
        unlinkSync(lockPath);
        continue;
      }
    } catch {
      continue; // released meanwhile
    }
    if (Date.now() > deadline) {
      throw new LetheError('CONFLICT', `the ${options.what} ${path} is locked by another process`, {
        hint: `if no Lethe process is running, remove ${lockPath}`,
      });
    }
    await sleep(wait);
  }
}
