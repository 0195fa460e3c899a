/**
 * privacy — the data classes of SPEC 3: every stored record belongs to exactly one, and each
 * class has a retention rule and says whether it may hold personal data. The defaults come
 * from the seeds (Integromat's retention page); the retention engine and the inventory report
 * (privacy issue) are generated from this list, so a class that is not here does not exist.
 */

export type DataClassName =
  | 'gateway_log'
  | 'dlq'
  | 'notification'
  | 'activity'
  | 'execution_detail'
  | 'audit'
  | 'directory'
  | 'data_store'
  | 'config'
  | 'credential'
  | 'counter';

export interface DataClass {
  name: DataClassName;
  /** What it holds, for people (the inventory report). */
  description: string;
  /** Days a record is kept after it was made; undefined = until it is deleted by its owner. */
  retentionDays: number | undefined;
  /** Whether records of this class may hold personal data (e-mails, names, payload values). */
  mayHoldPersonalData: boolean;
}

export const DATA_CLASSES: Readonly<Record<DataClassName, DataClass>> = {
  gateway_log: {
    name: 'gateway_log',
    description: 'Received webhooks: metadata, and the body for standard flows',
    retentionDays: 30,
    mayHoldPersonalData: true,
  },
  dlq: {
    name: 'dlq',
    description:
      'Trigger input of runs not yet finished, and of incomplete runs kept for retry (standard flows only)',
    retentionDays: 30,
    mayHoldPersonalData: true,
  },
  notification: {
    name: 'notification',
    description: 'Notices such as "a run failed" or "the dead-letter queue grew" (ids only)',
    retentionDays: 7,
    mayHoldPersonalData: false,
  },
  activity: {
    name: 'activity',
    description: 'Run summaries: ids, status, timings, row counts, error classes — no values',
    retentionDays: 30,
    mayHoldPersonalData: false,
  },
  execution_detail: {
    name: 'execution_detail',
    description: 'Per-step statistics and a capped sample of rows (standard flows only)',
    retentionDays: 60,
    mayHoldPersonalData: true,
  },
  audit: {
    name: 'audit',
    description:
      'Who changed what, when (ids only); deletion receipts; erasure requests (the subject sealed while open)',
    retentionDays: 365,
    mayHoldPersonalData: true,
  },
  directory: {
    name: 'directory',
    description: 'Users, groups and departments synced from sources (minimal fields)',
    retentionDays: undefined,
    mayHoldPersonalData: true,
  },
  data_store: {
    name: 'data_store',
    description: 'Small keyed tables owned by a workspace',
    retentionDays: undefined,
    mayHoldPersonalData: true,
  },
  config: {
    name: 'config',
    description: 'Workspaces, flow definitions and their versions, trigger state',
    retentionDays: undefined,
    // Flow text may carry inline values.
    mayHoldPersonalData: true,
  },
  credential: {
    name: 'credential',
    description: 'Connection settings with encrypted secrets, API token hashes, wrapped data keys',
    retentionDays: undefined,
    // A connection's settings may name a user.
    mayHoldPersonalData: true,
  },
  counter: {
    name: 'counter',
    description: 'autonumber counters per workspace',
    retentionDays: undefined,
    mayHoldPersonalData: false,
  },
};
