/**
 * The shape every command implements. A command is one file in this folder exporting a
 * CommandDefinition: the JSON Schema of its body (which the published flow schema is built
 * from), the steps it reads, its semantic checks, and how it turns input tables into one
 * output table. Commands know nothing of the CLI, the server, the store or the queue; what
 * they need from the outside comes through StepContext.
 */
import type { TSchema } from 'typebox';
import type { ConnectionProvider } from '../connectors/connector.js';
import type { CounterStore } from '../counters/counter-store.js';
import type { ErrorCode, ErrorDetails, LetheError } from '../errors/index.js';
import type { BoundExpression } from '../expr/expression.js';
import type { Table, Value } from '../table/index.js';

import type { Path } from '../document/source.js';

export type { Path, PathSegment } from '../document/source.js';

/** A reference from a command body to another step (`from`, `left`, `right`…). */
export interface StepReference {
  path: Path;
  step: string;
}

/** What a command's semantic check may use; paths are relative to the command body. */
export interface CheckContext {
  error(path: Path, message: string, hint?: string): void;
  /** Parse an expression, reporting syntax errors and unknown `$params` at the right position. */
  expression(path: Path, text: string): void;
  /** Names of the flow's declared params. */
  readonly params: ReadonlySet<string>;
}

/** The trigger's payload, for `input: { trigger: true }`. */
export interface TriggerInput {
  table: Table;
}

/** Everything a running command may use; paths are relative to the command body. */
export interface StepContext {
  readonly stepId: string;
  readonly command: string;
  readonly signal: AbortSignal;
  readonly params: Readonly<Record<string, Value>>;
  /** Folder that relative file paths resolve against (the flow file's folder). */
  readonly baseDir: string;
  /**
   * A file path of the flow (at `path` in the step) made absolute; where the run is confined
   * to its folder (on a server), a path leading out of it is an error.
   */
  resolvePath(file: string, path: Path): string;
  /** IANA time zone of the flow (for dates in autonumber formats). */
  readonly timezone: string;
  readonly runId: string;
  readonly runStartedAt: Date;
  readonly workspace: string;
  readonly trigger: TriggerInput | undefined;
  readonly connections: ConnectionProvider;
  readonly counters: CounterStore;
  /** Parse and bind an expression found at `path` to a table's columns. */
  expression(path: Path, text: string, columns: readonly string[]): BoundExpression;
  /** Report progress: rows done so far, and the total when known. */
  progress(done: number, total?: number): void;
  /** Yield to the event loop and stop if the run was cancelled. Call every few thousand rows. */
  checkpoint(): Promise<void>;
  /** A non-fatal remark shown to the user. */
  warn(message: string): void;
  /** Build an error located at `path` in this step, with the step's context. */
  error(code: ErrorCode, message: string, details?: ErrorDetails & { path?: Path }): LetheError;
  /** Index of a column, or an error naming the step, the path and the nearest column name. */
  column(table: Table, name: string, path: Path): number;
  /** Hand a table to whoever triggered the run (webhook `respond`, CLI output). */
  respond(table: Table): void;
  /**
   * Register an undo for when the run fails before any output that depends on this step has
   * committed (autonumber gives its numbers back this way).
   */
  undoOnFailure(undo: () => Promise<void>): void;
}

export interface CommandDefinition<Body = unknown> {
  readonly name: string;
  /** One line for documentation and help. */
  readonly summary: string;
  readonly schema: TSchema;
  references(body: Body): StepReference[];
  check?(body: Body, context: CheckContext): void;
  run(body: Body, inputs: Table[], context: StepContext): Promise<Table>;
}

/** Rows processed between two checkpoints: large enough to be cheap, small enough to cancel fast. */
export const CHUNK = 16_384;
