/**
 * Shows a run as it goes: one progress bar per step on a terminal, plain lines otherwise
 * (CI logs, pipes). Reads only the engine's events.
 */
import cliProgress from 'cli-progress';
import type { RunEvent, StepStats } from '../engine/events.js';

const numbers = new Intl.NumberFormat('en-US');

export function formatCount(n: number): string {
  return numbers.format(n);
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export interface ProgressView {
  handle(event: RunEvent): void;
  stop(): void;
}

function finishedLine(stats: StepStats): string {
  return `${stats.id} (${stats.command}): ${formatCount(stats.rowsIn)} → ${formatCount(stats.rowsOut)} rows in ${formatDuration(stats.durationMs)}`;
}

/** Plain lines on stderr: a line per finished step, and a progress line every few seconds. */
export function plainProgress(stream: NodeJS.WritableStream = process.stderr, everyMs = 2000): ProgressView {
  const lastLine = new Map<string, number>();
  return {
    handle(event) {
      switch (event.type) {
        case 'step.progress': {
          const now = performance.now();
          const last = lastLine.get(event.step) ?? now;
          if (!lastLine.has(event.step)) lastLine.set(event.step, now);
          if (now - last >= everyMs && event.done !== event.total) {
            lastLine.set(event.step, now);
            const total = event.total === undefined ? '' : ` of ${formatCount(event.total)}`;
            stream.write(`… ${event.step}: ${formatCount(event.done)}${total} rows\n`);
          }
          break;
        }
        case 'step.warning':
          stream.write(`! ${event.step}: ${event.message}\n`);
          break;
        case 'step.finished':
          stream.write(`✓ ${finishedLine(event.stats)}\n`);
          break;
        case 'step.failed':
          if (event.error.code !== 'CANCELLED')
            stream.write(`✗ ${event.step} (${event.stats.command}) failed\n`);
          break;
        default:
          break;
      }
    },
    stop() {},
  };
}

/** Bars on a terminal: each step's rows done (of its total when known) and its time. */
export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): ProgressView {
  const multibar = new cliProgress.MultiBar(
    {
      stream,
      hideCursor: true,
      clearOnComplete: false,
      fps: 8,
      barsize: 24,
      format: (
        options,
        params,
        payload: { step: string; command: string; state: string; unknownTotal: boolean },
      ) => {
        const size = options.barsize ?? 24;
        const filled = payload.unknownTotal ? 0 : Math.round(params.progress * size);
        const bar = payload.unknownTotal ? '·'.repeat(size) : '█'.repeat(filled) + '░'.repeat(size - filled);
        const rows = payload.unknownTotal
          ? `${formatCount(params.value)} rows`
          : `${formatCount(params.value)}/${formatCount(params.total)} rows`;
        const elapsed = formatDuration((params.stopTime ?? Date.now()) - params.startTime);
        return `${payload.state} ${payload.step.padEnd(16)} ${payload.command.padEnd(10)} ${bar} ${rows}  ${elapsed}`;
      },
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  return {
    handle(event) {
      switch (event.type) {
        case 'step.started':
          bars.set(
            event.step,
            multibar.create(0, 0, {
              step: event.step,
              command: event.command,
              state: '▸',
              unknownTotal: true,
            }),
          );
          break;
        case 'step.progress': {
          const bar = bars.get(event.step);
          if (!bar) break;
          if (event.total !== undefined) bar.setTotal(event.total);
          bar.update(event.done, { unknownTotal: event.total === undefined });
          break;
        }
        case 'step.warning':
          multibar.log(`! ${event.step}: ${event.message}\n`);
          break;
        case 'step.finished': {
          const bar = bars.get(event.step);
          bar?.setTotal(Math.max(event.stats.rowsOut, 1));
          bar?.update(event.stats.rowsOut, { state: '✓', unknownTotal: false });
          bar?.stop();
          break;
        }
        case 'step.failed': {
          const bar = bars.get(event.step);
          bar?.update({ state: event.error.code === 'CANCELLED' ? '■' : '✗' });
          bar?.stop();
          break;
        }
        default:
          break;
      }
    },
    stop() {
      multibar.stop();
    },
  };
}
