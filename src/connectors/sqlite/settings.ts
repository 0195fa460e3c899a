/** Settings of a SQLite connection: which file, and how to open it. */
import Type, { type Static } from 'typebox';

export const sqliteSettingsSchema = Type.Object(
  {
    path: Type.String({
      minLength: 1,
      description:
        'The database file, relative to the connections file; ":memory:" for a private in-memory database.',
    }),
    create: Type.Optional(
      Type.Boolean({
        description:
          'Create the database file if it does not exist (default false, so a misspelt path fails).',
      }),
    ),
    wal: Type.Optional(
      Type.Boolean({
        description:
          'Switch the database to WAL journaling, so readers are not blocked by a writer (a lasting change to the file; default false).',
      }),
    ),
    readonly: Type.Optional(
      Type.Boolean({ description: 'Open read-only: outputs to this connection fail.' }),
    ),
    busyTimeoutMs: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: 'How long to wait for another writer’s lock, in milliseconds (default 5000).',
      }),
    ),
  },
  { additionalProperties: false, description: 'A SQLite database file.' },
);

export type SqliteSettings = Static<typeof sqliteSettingsSchema>;
