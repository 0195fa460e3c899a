/** The events a run emits while it goes: the CLI draws progress from them, the server will record them. */
import type { LetheError } from '../errors/index.js';

export type RunStatus = 'succeeded' | 'failed' | 'cancelled';
export type StepStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'skipped';

export interface StepStats {
  id: string;
  command: string;
  status: StepStatus;
  rowsIn: number;
  rowsOut: number;
  durationMs: number;
  /** The first rows of the step's output, when the run asked for samples. */
  sample?: { columns: string[]; rows: unknown[][] };
}

export type RunEvent =
  | { type: 'run.started'; runId: string; flow: string; steps: { id: string; command: string }[] }
  | { type: 'step.started'; runId: string; step: string; command: string }
  | { type: 'step.progress'; runId: string; step: string; done: number; total: number | undefined }
  | { type: 'step.warning'; runId: string; step: string; message: string }
  | { type: 'step.finished'; runId: string; step: string; stats: StepStats }
  | { type: 'step.failed'; runId: string; step: string; stats: StepStats; error: LetheError }
  | {
      type: 'run.finished';
      runId: string;
      status: RunStatus;
      durationMs: number;
      error: LetheError | undefined;
    };

export type RunEventListener = (event: RunEvent) => void;
