/**
 * The schedule and poll trigger fields (docs/triggers.md): what is accepted, and the message
 * and position of each mistake.
 */
import { describe, expect, it } from 'vitest';
import { formatError, LetheErrors } from '../../src/errors/index.js';
import { parseFlow } from '../../src/flow/load.js';

function flow(trigger: string): string {
  return [
    'version: 1',
    'name: f',
    `trigger: ${trigger}`,
    'steps:',
    '  - id: source',
    '    input: { connection: db, table: items }',
    '  - id: row',
    '    input: { trigger: true }',
    '  - id: out',
    '    output: { from: row, respond: true }',
    '',
  ].join('\n');
}

/** The first line of each error, or [] when the flow is accepted. */
function problems(trigger: string): string[] {
  try {
    parseFlow(flow(trigger), 'f.yaml', '/nonexistent');
    return [];
  } catch (error) {
    if (!(error instanceof LetheErrors)) throw error;
    return error.errors.map((e) => formatError(e).split('\n')[0]!);
  }
}

describe('trigger validation', () => {
  it('accepts schedules with a missed-fire policy and polls by key or cursor', () => {
    expect(problems('{ schedule: { cron: "0 * * * *" } }')).toEqual([]);
    expect(problems('{ schedule: { cron: "*/5 * * * * *", timezone: Asia/Tokyo, missed: skip } }')).toEqual(
      [],
    );
    expect(problems('{ poll: { every: 1m, step: source, key: [id, region] } }')).toEqual([]);
    expect(problems('{ poll: { every: 1s, step: source, cursor: updated_at, initial: fire } }')).toEqual([]);
  });

  it('rejects an unknown missed-fire policy', () => {
    expect(problems('{ schedule: { cron: "0 * * * *", missed: all } }')).toEqual([
      expect.stringMatching(/^f\.yaml:3:\d+: trigger\.schedule\.missed: .*once.*skip|skip.*once/),
    ]);
  });

  it('needs exactly one of key and cursor', () => {
    expect(problems('{ poll: { every: 1m, step: source } }')).toEqual([
      'f.yaml:3:18: trigger.poll: a poll needs key or cursor to tell new rows from seen ones',
    ]);
    expect(problems('{ poll: { every: 1m, step: source, key: [id], cursor: id } }')).toEqual([
      'f.yaml:3:56: trigger.poll.cursor: a poll has either key or cursor, not both',
    ]);
  });

  it('names the step to poll, which must be an input that does not read the trigger', () => {
    expect(problems('{ poll: { every: 1m, step: sorce, key: [id] } }')).toEqual([
      'f.yaml:3:37: trigger.poll.step: no step "sorce" (did you mean "source"?)',
    ]);
    expect(problems('{ poll: { every: 1m, step: out, key: [id] } }')).toEqual([
      'f.yaml:3:37: trigger.poll.step: step "out" is not an input step',
    ]);
    expect(problems('{ poll: { every: 1m, step: row, key: [id] } }')).toEqual([
      `f.yaml:3:37: trigger.poll.step: step "row" reads the trigger's payload, which a poll makes`,
    ]);
    expect(problems('{ poll: { every: 1m, key: [id] } }')).toEqual([
      expect.stringMatching(/^f\.yaml:3:\d+: trigger\.poll: .*step/),
    ]);
  });

  it('polls at most once a second', () => {
    expect(problems('{ poll: { every: 500ms, step: source, key: [id] } }')).toEqual([
      'f.yaml:3:27: trigger.poll.every: a poll runs at most once a second',
    ]);
    expect(problems('{ poll: { every: 0s, step: source, key: [id] } }')).toEqual([
      'f.yaml:3:27: trigger.poll.every: a poll runs at most once a second',
    ]);
    expect(problems('{ poll: { every: 1000ms, step: source, key: [id] } }')).toEqual([]);
  });
});
