/**
 * Flow validation: the schema, then the rules a schema cannot express — exactly one command
 * per step, unique ids, references that exist, no cycles, expressions that parse, params that
 * exist, defaults that fit their type, valid time zones and cron expressions. Every problem is
 * collected and reported at once, each as `file:line:col: path: message`.
 */
import { Cron } from 'croner';
import { COMMAND_NAMES, COMMANDS } from '../commands/index.js';
import type { CheckContext, CommandDefinition, Path, StepReference } from '../commands/command.js';
import { LetheError } from '../errors/index.js';
import { didYouMean } from '../errors/suggest.js';
import { Expression, ExpressionSyntaxError } from '../expr/expression.js';
import { ConversionError, convert } from '../table/types.js';
import type { Value } from '../table/index.js';
import { schemaProblems } from '../document/schema-problems.js';
import {
  STEP_FIELDS,
  StepAfterSchema,
  StepIdSchema,
  TopLevelSchema,
  type ParamDefinition,
  type RetryDefinition,
  type TriggerDefinition,
} from './schema.js';
import type { SourceDocument } from '../document/source.js';

export interface FlowStep {
  id: string;
  description?: string;
  command: string;
  /** The command's body, valid against the command's schema. */
  body: unknown;
  /** Position in the file's steps list. */
  index: number;
  /** The steps whose output this one reads (`from`, `left`, `right`), in the command's order. */
  references: StepReference[];
  /** Steps that must finish first without feeding it (`after`). */
  after: StepReference[];
}

export interface Flow {
  version: 1;
  name: string;
  description?: string;
  privacy: 'standard' | 'confidential';
  timezone: string;
  params: Record<string, ParamDefinition>;
  trigger?: TriggerDefinition;
  retry?: RetryDefinition;
  steps: FlowStep[];
}

export const TRIGGER_KINDS = ['manual', 'schedule', 'webhook', 'poll'] as const;

export function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

class Collector {
  readonly errors: LetheError[] = [];
  constructor(readonly source: SourceDocument) {}

  error(path: Path, message: string, options: { atKey?: boolean; hint?: string } = {}): void {
    this.errors.push(
      new LetheError('FLOW_INVALID', message, {
        location: this.source.locate(path, { atKey: options.atKey }),
        hint: options.hint,
      }),
    );
  }

  schema(schema: Parameters<typeof schemaProblems>[0], value: unknown, base: Path): boolean {
    const problems = schemaProblems(schema, value);
    for (const problem of problems)
      this.error([...base, ...problem.path], problem.message, { atKey: problem.atKey });
    return problems.length === 0;
  }

  expression(path: Path, text: string, params: ReadonlySet<string>): void {
    let expression: Expression;
    try {
      expression = Expression.compile(text);
    } catch (error) {
      if (error instanceof ExpressionSyntaxError) {
        this.errors.push(
          new LetheError('EXPRESSION_SYNTAX', `invalid expression: ${error.message}`, {
            location: this.source.locateInString(path, error.offset),
          }),
        );
      } else if (error instanceof LetheError) {
        this.errors.push(new LetheError(error.code, error.message, { location: this.source.locate(path) }));
      } else {
        throw error;
      }
      return;
    }
    for (const reference of expression.variables) {
      if (reference.variable !== 'params' || reference.name === undefined || params.has(reference.name))
        continue;
      const message =
        params.size === 0
          ? `the expression reads $params.${reference.name}, but the flow declares no params`
          : `no parameter "${reference.name}"${didYouMean(reference.name, params)}`;
      this.errors.push(
        new LetheError('FLOW_INVALID', message, {
          location: this.source.locateInString(
            path,
            Math.max(reference.position - reference.name.length + 1, 1),
          ),
          hint: params.size === 0 ? `declare it: params: { ${reference.name}: { type: string } }` : undefined,
        }),
      );
    }
  }
}

function checkParams(raw: Record<string, unknown>, c: Collector): void {
  const params = isRecord(raw.params) ? raw.params : {};
  for (const [name, definition] of Object.entries(params)) {
    if (!isRecord(definition) || definition.default === undefined || typeof definition.type !== 'string')
      continue;
    try {
      convert(definition.default as Value, definition.type as ParamDefinition['type']);
    } catch (error) {
      if (!(error instanceof ConversionError)) throw error;
      c.error(
        ['params', name, 'default'],
        `the default does not fit type ${definition.type}: ${error.message}`,
      );
    }
  }
}

/** The signature's rules the schema cannot say: a bounded tolerance, `header` for generic only. */
function checkSignature(signature: Record<string, unknown>, c: Collector): void {
  const at = ['trigger', 'webhook', 'signature'];
  const tolerance =
    typeof signature.tolerance === 'string' ? /^([0-9]+)(ms|s|m|h|d)$/.exec(signature.tolerance) : null;
  if (tolerance) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
      tolerance[2] as 'ms' | 's' | 'm' | 'h' | 'd'
    ];
    const ms = Number(tolerance[1]) * unit;
    // Timestamps are whole seconds; beyond an hour a captured request stays replayable too long.
    if (ms < 1000 || ms > 3_600_000) {
      c.error([...at, 'tolerance'], 'the timestamp tolerance must be between 1s and 1h', {
        hint: 'leave it out for the default of 300s',
      });
    }
  }
  if (signature.header !== undefined && signature.scheme !== 'generic') {
    c.error([...at, 'header'], `header applies to the generic scheme only, not ${String(signature.scheme)}`, {
      atKey: true,
      hint: 'remove header: github and standard-webhooks use their own fixed headers',
    });
  }
}

function checkTrigger(raw: Record<string, unknown>, c: Collector): void {
  if (typeof raw.timezone === 'string' && !isValidTimeZone(raw.timezone)) {
    c.error(['timezone'], `unknown time zone "${raw.timezone}"`, {
      hint: 'use an IANA name such as UTC or Asia/Tokyo',
    });
  }
  if (!isRecord(raw.trigger)) return;
  const kinds = TRIGGER_KINDS.filter(
    (kind) => raw.trigger && (raw.trigger as Record<string, unknown>)[kind] !== undefined,
  );
  if (kinds.length === 0) c.error(['trigger'], `a trigger needs one of ${TRIGGER_KINDS.join(', ')}`);
  if (kinds.length > 1)
    c.error(['trigger', kinds[1]!], `a flow has one trigger, but this one has ${kinds.join(' and ')}`, {
      atKey: true,
    });
  const schedule = raw.trigger.schedule;
  if (isRecord(schedule)) {
    let zone = typeof schedule.timezone === 'string' ? schedule.timezone : undefined;
    if (zone !== undefined && !isValidTimeZone(zone)) {
      c.error(['trigger', 'schedule', 'timezone'], `unknown time zone "${zone}"`, {
        hint: 'use an IANA name such as UTC or Asia/Tokyo',
      });
      zone = undefined; // the cron expression is still checked: every mistake is reported at once
    }
    if (typeof schedule.cron === 'string') {
      try {
        new Cron(schedule.cron, { paused: true, timezone: zone }).stop();
      } catch (error) {
        c.error(
          ['trigger', 'schedule', 'cron'],
          `invalid cron expression: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    }
  }
  const webhook = raw.trigger.webhook;
  if (isRecord(webhook) && isRecord(webhook.signature)) checkSignature(webhook.signature, c);
  const poll = raw.trigger.poll;
  if (isRecord(poll)) {
    const every = typeof poll.every === 'string' ? /^([0-9]+)(ms|s|m|h|d)$/.exec(poll.every) : null;
    if (every && (Number(every[1]) === 0 || (every[2] === 'ms' && Number(every[1]) < 1000))) {
      c.error(['trigger', 'poll', 'every'], 'a poll runs at most once a second', { hint: 'use 1s or more' });
    }
    if (poll.key !== undefined && poll.cursor !== undefined) {
      c.error(['trigger', 'poll', 'cursor'], 'a poll has either key or cursor, not both', {
        atKey: true,
        hint: 'key: columns that identify a row (fires for new and changed rows); cursor: a column that only grows (fires for new rows)',
      });
    } else if (poll.key === undefined && poll.cursor === undefined) {
      c.error(['trigger', 'poll'], 'a poll needs key or cursor to tell new rows from seen ones', {
        hint: 'key: [id] fires for new and changed rows; cursor: updated_at fires for rows above the last one seen',
      });
    }
    if (typeof poll.step === 'string') {
      const steps = Array.isArray(raw.steps) ? raw.steps.filter(isRecord) : [];
      const ids = steps.map((step) => step.id).filter((id): id is string => typeof id === 'string');
      const target = steps.find((step) => step.id === poll.step);
      if (!target) {
        c.error(['trigger', 'poll', 'step'], `no step "${poll.step}"${didYouMean(poll.step, ids)}`);
      } else if (!isRecord(target.input)) {
        c.error(['trigger', 'poll', 'step'], `step "${poll.step}" is not an input step`, {
          hint: 'a poll re-reads one input step (a connection, a file or a request)',
        });
      } else if (target.input.trigger === true) {
        c.error(
          ['trigger', 'poll', 'step'],
          `step "${poll.step}" reads the trigger's payload, which a poll makes`,
          {
            hint: 'poll the step that reads the source; read each new row with input: { trigger: true }',
          },
        );
      }
    }
  }
}

/**
 * The steps a command body refers to. A body that failed its schema may still name steps
 * (an unknown `from` beside a wrong `count`): those references are checked too, so one run of
 * validate reports both.
 */
function readReferences(command: CommandDefinition<never>, body: unknown, valid: boolean): StepReference[] {
  if (valid) return command.references(body as never);
  if (!isRecord(body)) return [];
  try {
    return command.references(body as never).filter((reference) => typeof reference.step === 'string');
  } catch {
    return [];
  }
}

/** Check one step; returns it when it is well formed enough to take part in the graph. */
function checkStep(
  raw: unknown,
  index: number,
  params: ReadonlySet<string>,
  c: Collector,
): FlowStep | undefined {
  const path: Path = ['steps', index];
  if (!isRecord(raw)) {
    c.error(path, 'a step must be a mapping with an "id" and one command');
    return undefined;
  }
  let id: string | undefined;
  if (raw.id === undefined) c.error(path, 'missing required field "id"');
  else if (c.schema(StepIdSchema, raw.id, [...path, 'id'])) id = raw.id as string;
  if (raw.description !== undefined && typeof raw.description !== 'string') {
    c.error([...path, 'description'], 'must be a string');
  }
  const after: StepReference[] =
    raw.after !== undefined && c.schema(StepAfterSchema, raw.after, [...path, 'after'])
      ? (raw.after as string[]).map((step, i) => ({ step, path: [...path, 'after', i] }))
      : [];
  const keys = Object.keys(raw);
  const commands = keys.filter((key) => COMMANDS.has(key));
  for (const key of keys) {
    if (COMMANDS.has(key) || (STEP_FIELDS as readonly string[]).includes(key)) continue;
    const suggestion = didYouMean(key, [...COMMAND_NAMES, ...STEP_FIELDS]);
    c.error([...path, key], `unknown command or field "${key}"${suggestion}`, {
      atKey: true,
      hint: suggestion ? undefined : `commands: ${COMMAND_NAMES.join(', ')}`,
    });
  }
  if (commands.length === 0) {
    if (keys.every((key) => (STEP_FIELDS as readonly string[]).includes(key))) {
      c.error(path, `the step has no command; use one of ${COMMAND_NAMES.join(', ')}`);
    }
    return undefined;
  }
  if (commands.length > 1) {
    c.error(
      [...path, commands[1]!],
      `a step has exactly one command, but this one has ${commands.map((name) => `"${name}"`).join(' and ')}`,
      {
        atKey: true,
        hint: 'split it into one step per command',
      },
    );
    return undefined;
  }
  const name = commands[0]!;
  const command = COMMANDS.get(name)!;
  const body = raw[name];
  const base: Path = [...path, name];
  const valid = c.schema(command.schema, body, base);
  if (valid) {
    const context: CheckContext = {
      error: (at, message, hint) => c.error([...base, ...at], message, { hint }),
      expression: (at, text) => c.expression([...base, ...at], text, params),
      params,
    };
    command.check?.(body as never, context);
  }
  if (id === undefined) return undefined;
  const references = readReferences(command, body, valid).map((reference) => ({
    ...reference,
    path: [...base, ...reference.path],
  }));
  return {
    id,
    ...(typeof raw.description === 'string' ? { description: raw.description } : {}),
    command: name,
    body,
    index,
    references,
    after,
  };
}

function checkGraph(steps: FlowStep[], allIds: Map<string, number>, c: Collector): void {
  for (const step of steps) {
    for (const reference of [...step.references, ...step.after]) {
      if (reference.step === step.id) c.error(reference.path, `step "${step.id}" cannot read its own output`);
      else if (!allIds.has(reference.step)) {
        c.error(reference.path, `no step "${reference.step}"${didYouMean(reference.step, allIds.keys())}`);
      }
    }
  }
  // Cycles: depth-first search over references that resolve.
  const byId = new Map(steps.map((step) => [step.id, step]));
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const reported = new Set<string>();
  const visit = (step: FlowStep): void => {
    state.set(step.id, 'visiting');
    stack.push(step.id);
    for (const reference of [...step.references, ...step.after]) {
      const next = byId.get(reference.step);
      if (!next || next.id === step.id) continue;
      if (state.get(next.id) === 'visiting') {
        const cycle = [...stack.slice(stack.indexOf(next.id)), next.id];
        const key = [...cycle].sort().join(',');
        if (!reported.has(key)) {
          reported.add(key);
          c.error(reference.path, `steps form a cycle: ${cycle.join(' → ')}`, {
            hint: 'a step may only read steps that do not, directly or not, read it',
          });
        }
      } else if (!state.has(next.id)) {
        visit(next);
      }
    }
    stack.pop();
    state.set(step.id, 'done');
  };
  for (const step of steps) if (!state.has(step.id)) visit(step);
}

/** Validate a parsed document; returns the flow, or every problem found. */
export function validateFlow(
  source: SourceDocument,
): { flow: Flow; errors: [] } | { flow: undefined; errors: LetheError[] } {
  if (source.errors.length > 0) return { flow: undefined, errors: source.errors };
  const c = new Collector(source);
  const raw = source.value;
  if (!isRecord(raw)) {
    c.error([], 'a flow must be a mapping with version, name and steps');
    return { flow: undefined, errors: c.errors };
  }
  c.schema(TopLevelSchema, raw, []);
  checkParams(raw, c);
  checkTrigger(raw, c);
  const params = new Set(isRecord(raw.params) ? Object.keys(raw.params) : []);
  const steps: FlowStep[] = [];
  const ids = new Map<string, number>();
  if (Array.isArray(raw.steps)) {
    raw.steps.forEach((item, index) => {
      const id = isRecord(item) && typeof item.id === 'string' ? item.id : undefined;
      if (id !== undefined) {
        const first = ids.get(id);
        if (first !== undefined) {
          c.error(['steps', index, 'id'], `duplicate step id "${id}" (also steps[${first}])`);
        } else {
          ids.set(id, index);
        }
      }
      const step = checkStep(item, index, params, c);
      if (step && ids.get(step.id) === index) steps.push(step);
    });
    checkGraph(steps, ids, c);
    const responders = steps.filter(
      (step) => step.command === 'output' && isRecord(step.body) && step.body.respond === true,
    );
    for (const extra of responders.slice(1)) {
      c.error(
        ['steps', extra.index, 'output', 'respond'],
        `only one output may respond; "${responders[0]!.id}" already does`,
      );
    }
  }
  if (c.errors.length > 0) {
    c.errors.sort(
      (a, b) =>
        (a.details.location?.line ?? 0) - (b.details.location?.line ?? 0) ||
        (a.details.location?.column ?? 0) - (b.details.location?.column ?? 0),
    );
    return { flow: undefined, errors: c.errors };
  }
  const flow: Flow = {
    version: 1,
    name: raw.name as string,
    ...(typeof raw.description === 'string' ? { description: raw.description } : {}),
    privacy: (raw.privacy as Flow['privacy'] | undefined) ?? 'standard',
    timezone: (raw.timezone as string | undefined) ?? 'UTC',
    params: (raw.params as Record<string, ParamDefinition> | undefined) ?? {},
    ...(raw.trigger ? { trigger: raw.trigger as TriggerDefinition } : {}),
    ...(raw.retry ? { retry: raw.retry as RetryDefinition } : {}),
    steps,
  };
  return { flow, errors: [] };
}
