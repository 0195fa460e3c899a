/**
 * engine — runs a validated flow in memory. Steps start as soon as their inputs exist (up to a
 * concurrency bound), tables are freed once their last reader is done, progress and results
 * go out as events, and a failure or cancellation stops the rest. The engine knows nothing of
 * HTTP, the store or the queue: connections, counters and the trigger payload come in through
 * RunOptions.
 */
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Path, StepContext, TriggerInput } from '../commands/command.js';
import { COMMANDS } from '../commands/index.js';
import { leavesFolder, type ConnectionProvider } from '../connectors/connector.js';
import type { CounterStore } from '../counters/counter-store.js';
import { LetheError, toLetheError, type ErrorDetails } from '../errors/index.js';
import { didYouMean } from '../errors/suggest.js';
import { DEFAULT_LIMITS, Expression, type ExpressionLimits } from '../expr/expression.js';
import type { LoadedFlow } from '../flow/load.js';
import type { Table, Value } from '../table/index.js';
import type { RunEvent, RunEventListener, RunStatus, StepStats } from './events.js';
import { planFlow } from './plan.js';

export interface RunOptions {
  /** Typed parameter values (see resolveParams). */
  params?: Record<string, Value>;
  connections: ConnectionProvider;
  counters: CounterStore;
  signal?: AbortSignal;
  onEvent?: RunEventListener;
  trigger?: TriggerInput;
  runId?: string;
  workspace?: string;
  limits?: Partial<ExpressionLimits>;
  /** Steps running at once (default 4); CPU-bound steps share one thread anyway. */
  concurrency?: number;
  /** Smallest interval between two progress events of a step (default 100 ms). */
  progressIntervalMs?: number;
  /** When the run counts as started (dates in autonumber formats); default now. */
  startedAt?: Date;
  /** Keep file paths inside the flow's folder (servers: a workspace's files folder). */
  confineFiles?: boolean;
  /** Keep this many first rows of each step's output in its statistics (default 0). */
  sampleRows?: number;
}

export interface RunResult {
  runId: string;
  status: RunStatus;
  durationMs: number;
  steps: StepStats[];
  error: LetheError | undefined;
  /** The table an output with `respond: true` produced, when the run succeeded. */
  response: Table | undefined;
  warnings: { step: string; message: string }[];
}

function cancelled(): LetheError {
  return new LetheError('CANCELLED', 'the run was cancelled');
}

export async function runFlow(loaded: LoadedFlow, options: RunOptions): Promise<RunResult> {
  const { flow, source, baseDir } = loaded;
  const runId = options.runId ?? randomUUID();
  const startedAt = options.startedAt ?? new Date();
  const started = performance.now();
  const limits: ExpressionLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const params = options.params ?? {};
  const emit = (event: RunEvent) => options.onEvent?.(event);
  const progressInterval = options.progressIntervalMs ?? 100;
  const concurrency = Math.max(1, options.concurrency ?? 4);

  // One controller stops every step: on the caller's signal, or on the first failure.
  const controller = new AbortController();
  const onAbort = () => controller.abort(cancelled());
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });

  const plan = planFlow(flow);
  const stats = new Map<string, StepStats>(
    flow.steps.map((step) => [
      step.id,
      { id: step.id, command: step.command, status: 'pending', rowsIn: 0, rowsOut: 0, durationMs: 0 },
    ]),
  );
  const tables = new Map<string, Table>();
  const readersLeft = new Map([...plan].map(([id, planned]) => [id, planned.readers]));
  // Undo actions in the order they were registered, with the step that registered them.
  const undo: { step: string; action: () => Promise<void> }[] = [];
  const committed = new Set<string>();
  const warnings: RunResult['warnings'] = [];
  let response: Table | undefined;
  let failure: LetheError | undefined;

  emit({
    type: 'run.started',
    runId,
    flow: flow.name,
    steps: flow.steps.map((s) => ({ id: s.id, command: s.command })),
  });

  const contextFor = (stepId: string): StepContext => {
    const planned = plan.get(stepId)!;
    const { step } = planned;
    const bodyPath: Path = ['steps', step.index, step.command];
    let lastProgress = 0;
    const error = (
      code: LetheError['code'],
      message: string,
      details: ErrorDetails & { path?: Path } = {},
    ) => {
      const { path, ...rest } = details;
      return new LetheError(code, message, {
        ...rest,
        step: stepId,
        command: step.command,
        location: rest.location ?? source.locate([...bodyPath, ...(path ?? [])]),
      });
    };
    const context: StepContext = {
      stepId,
      command: step.command,
      signal: controller.signal,
      params,
      baseDir,
      timezone: flow.timezone,
      runId,
      runStartedAt: startedAt,
      workspace: options.workspace ?? 'default',
      trigger: options.trigger,
      connections: options.connections,
      counters: options.counters,
      resolvePath(file, path) {
        const absolute = resolve(baseDir, file);
        if (options.confineFiles && leavesFolder(baseDir, file)) {
          throw error('SOURCE_ERROR', `the path "${file}" leads outside the workspace's files folder`, {
            path,
            hint: 'use a path relative to the workspace folder, without ".."',
          });
        }
        return absolute;
      },
      expression(path, text, columns) {
        const expression = Expression.compile(text, limits);
        if (columns.length > 0) {
          for (const name of expression.columns) {
            if (columns.includes(name)) continue;
            throw error(
              'COLUMN_UNKNOWN',
              `the expression reads column "${name}", which the input does not have${didYouMean(name, columns)}`,
              {
                path,
                expression: text,
                hint: `the input's columns are: ${columns.join(', ')}; a column a source may omit can be declared in the input's types`,
              },
            );
          }
        }
        return expression.bind(columns, { params });
      },
      progress(done, total) {
        const now = performance.now();
        if (done !== total && now - lastProgress < progressInterval) return;
        lastProgress = now;
        emit({ type: 'step.progress', runId, step: stepId, done, total });
      },
      async checkpoint() {
        await yieldToLoop();
        if (controller.signal.aborted) throw cancelled();
      },
      warn(message) {
        warnings.push({ step: stepId, message });
        emit({ type: 'step.warning', runId, step: stepId, message });
      },
      error,
      column(table, name, path) {
        const index = table.columns.indexOf(name);
        if (index !== -1) return index;
        throw error('COLUMN_UNKNOWN', `no column "${name}" in the input${didYouMean(name, table.columns)}`, {
          path,
          hint:
            table.columns.length > 0
              ? `the input's columns are: ${table.columns.join(', ')}`
              : 'the input has no columns',
        });
      },
      respond(table) {
        response = table;
      },
      undoOnFailure(action) {
        undo.push({ step: stepId, action });
      },
    };
    return context;
  };

  const runStep = async (stepId: string): Promise<void> => {
    const planned = plan.get(stepId)!;
    const { step } = planned;
    const stat = stats.get(stepId)!;
    const command = COMMANDS.get(step.command)!;
    const inputs = planned.inputs.map((id) => tables.get(id)!);
    stat.status = 'running';
    stat.rowsIn = inputs.reduce((sum, table) => sum + table.rows.length, 0);
    emit({ type: 'step.started', runId, step: stepId, command: step.command });
    const begin = performance.now();
    try {
      const output = await command.run(step.body as never, inputs, contextFor(stepId));
      stat.durationMs = performance.now() - begin;
      stat.rowsOut = output.rows.length;
      stat.status = 'succeeded';
      if (options.sampleRows) {
        stat.sample = { columns: [...output.columns], rows: output.rows.slice(0, options.sampleRows) };
      }
      tables.set(stepId, output);
      // A file or table written is committed; a response is only delivered if the run succeeds.
      if (step.command === 'output' && (step.body as { respond?: boolean }).respond !== true) {
        committed.add(stepId);
        for (const ancestor of planned.ancestors) committed.add(ancestor);
      }
      for (const input of new Set(planned.inputs)) {
        const left = readersLeft.get(input)! - 1;
        readersLeft.set(input, left);
        if (left === 0) tables.delete(input);
      }
      if (planned.readers === 0) tables.delete(stepId);
      emit({ type: 'step.finished', runId, step: stepId, stats: { ...stat } });
    } catch (thrown) {
      stat.durationMs = performance.now() - begin;
      // Once the run is stopping, whatever a step throws is the stop reaching it, not its own failure.
      const stopped = controller.signal.aborted;
      let error = stopped ? cancelled() : toLetheError(thrown);
      error = error.withContext({
        step: stepId,
        command: step.command,
        location: source.locate(['steps', step.index, step.command]),
      });
      stat.status = stopped ? 'cancelled' : 'failed';
      if (!failure) failure = error;
      controller.abort(cancelled());
      emit({ type: 'step.failed', runId, step: stepId, stats: { ...stat }, error });
    }
  };

  // Start every step whose inputs are done, keeping at most `concurrency` running.
  const running = new Map<string, Promise<void>>();
  const isReady = (id: string) =>
    stats.get(id)!.status === 'pending' &&
    plan.get(id)!.waitsFor.every((other) => stats.get(other)!.status === 'succeeded');
  while (!controller.signal.aborted) {
    for (const step of flow.steps) {
      if (running.size >= concurrency || controller.signal.aborted) break;
      if (!running.has(step.id) && isReady(step.id)) {
        running.set(
          step.id,
          runStep(step.id).finally(() => running.delete(step.id)),
        );
      }
    }
    if (running.size === 0) break;
    await Promise.race(running.values());
  }
  await Promise.allSettled(running.values());

  let status: RunStatus = 'succeeded';
  if (failure) status = failure.code === 'CANCELLED' ? 'cancelled' : 'failed';
  else if (controller.signal.aborted) {
    status = 'cancelled';
    failure = cancelled();
  }
  if (status !== 'succeeded') {
    for (const stat of stats.values()) if (stat.status === 'pending') stat.status = 'skipped';
    // Give back what no committed output depends on (autonumber blocks), newest first.
    for (const { step, action } of undo.reverse()) {
      if (committed.has(step)) continue;
      try {
        await action();
      } catch (error) {
        warnings.push({ step, message: `could not undo: ${toLetheError(error).message}` });
      }
    }
  }
  options.signal?.removeEventListener('abort', onAbort);
  const durationMs = performance.now() - started;
  emit({ type: 'run.finished', runId, status, durationMs, error: failure });
  return {
    runId,
    status,
    durationMs,
    steps: flow.steps.map((step) => stats.get(step.id)!),
    error: failure,
    response: status === 'succeeded' ? response : undefined,
    warnings,
  };
}
