/**
 * sqlite — small helpers for better-sqlite3 shared by the store, the CLI's counter file and the
 * SQLite connector.
 */
import type Database from 'better-sqlite3';

/**
 * Switch a database to WAL. SQLite answers SQLITE_BUSY at once — without the busy timeout —
 * while another process is setting up the same new file, so wait a little and try again
 * (bounded: about four seconds).
 */
export async function switchToWal(db: Database.Database): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== 'SQLITE_BUSY' || attempt >= 200) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 20));
    }
  }
}
