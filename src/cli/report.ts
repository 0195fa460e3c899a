/** What the CLI prints: errors without stack traces, the summary table, JSON results. */
import { formatError, LetheErrors, toLetheError, type LetheError } from '../errors/index.js';
import type { RunResult } from '../engine/run.js';
import { rowToRecord, type Table } from '../table/index.js';
import { formatCount, formatDuration } from './progress.js';

export const EXIT = { ok: 0, failed: 1, invalid: 2 } as const;

/** Every error a thrown value stands for, as LetheErrors. */
export function errorsOf(thrown: unknown): LetheError[] {
  if (thrown instanceof LetheErrors) return [...thrown.errors];
  return [toLetheError(thrown)];
}

/** Print errors for people; internal errors say so, and show a stack only with LETHE_DEBUG=1. */
export function printErrors(
  errors: readonly LetheError[],
  stream: NodeJS.WritableStream = process.stderr,
): void {
  for (const error of errors) {
    if (error.code === 'INTERNAL') {
      stream.write(`internal error: ${error.message}\n`);
      const cause = error.details.cause;
      if (process.env.LETHE_DEBUG === '1' && cause instanceof Error && cause.stack)
        stream.write(`${cause.stack}\n`);
      else
        stream.write('  (this is a bug in Lethe; run with LETHE_DEBUG=1 for details and please report it)\n');
    } else {
      stream.write(`${formatError(error)}\n`);
    }
  }
}

function pad(cells: string[], widths: number[], rightAligned: Set<number>): string {
  return cells
    .map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
    .join('  ');
}

export function summaryTable(result: Pick<RunResult, 'steps'>): string {
  const header = ['step', 'command', 'rows in', 'rows out', 'time', 'status'];
  const rows = result.steps.map((step) => [
    step.id,
    step.command,
    step.status === 'skipped' ? '' : formatCount(step.rowsIn),
    step.status === 'succeeded' ? formatCount(step.rowsOut) : '',
    step.status === 'skipped' ? '' : formatDuration(step.durationMs),
    step.status,
  ]);
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const right = new Set([2, 3, 4]);
  const lines = [
    pad(header, widths, right),
    widths.map((w) => '─'.repeat(w)).join('  '),
    ...rows.map((row) => pad(row, widths, right)),
  ];
  return lines.map((line) => line.trimEnd()).join('\n');
}

export function tableToRecords(table: Table): Record<string, unknown>[] {
  return table.rows.map((row) => rowToRecord(table.columns, row));
}

export function peakRssBytes(): number {
  // resourceUsage().maxRSS is in kilobytes.
  return process.resourceUsage().maxRSS * 1024;
}

export function resultJson(result: RunResult, flow: string): Record<string, unknown> {
  return {
    runId: result.runId,
    flow,
    status: result.status,
    durationMs: Math.round(result.durationMs * 1000) / 1000,
    peakRssBytes: peakRssBytes(),
    steps: result.steps.map((step) => ({ ...step, durationMs: Math.round(step.durationMs * 1000) / 1000 })),
    warnings: result.warnings,
    ...(result.error ? { error: { code: result.error.code, message: formatError(result.error) } } : {}),
    ...(result.response ? { response: tableToRecords(result.response) } : {}),
  };
}
