/**
 * Schedules: which ticks of a cron expression are due, and which of them fire under the
 * flow's missed-fire policy (docs/triggers.md). Pure functions of the clock, so they are
 * tested without waiting; src/triggers/index.ts keeps the timers and the store.
 *
 * - A tick is *due* when it is later than the last one handled (`floor`) and not in the future.
 * - A due tick is *on time* when it came while this process was watching the flow (`since`)
 *   and is at most `lateMs` old: it fires, however late the timer woke (a busy event loop).
 * - Every other due tick was *missed* (no server ran, or the machine slept): `once` fires the
 *   most recent missed tick, once; `skip` fires none.
 */
import { Cron } from 'croner';

export type MissedPolicy = 'once' | 'skip';

/** On-time ticks fired in one check at most (a per-second cron after a 60 s stall is 60). */
export const MAX_TICKS_PER_CHECK = 1000;

export interface ScheduleDefinition {
  cron: string;
  timezone?: string;
  missed?: MissedPolicy;
}

export interface TickWindow {
  /** Ticks at or before this (epoch ms) were handled already or predate the flow. */
  floor: number;
  /** Ticks from here on are on time (epoch ms). */
  onTimeFrom: number;
  now: number;
}

export interface DueTicks {
  /** Ticks to fire, oldest first (epoch ms). */
  fire: number[];
  /** The latest due tick, fired or not: the new floor. Undefined when nothing was due. */
  last: number | undefined;
  /** The most recent missed tick, if any (fired with `once`, not with `skip`). */
  missed: number | undefined;
}

/** A paused croner job for a flow's schedule: it computes ticks and never runs anything. */
export function cronOf(schedule: ScheduleDefinition, flowTimezone: string | undefined): Cron {
  return new Cron(schedule.cron, { paused: true, timezone: schedule.timezone ?? flowTimezone ?? 'UTC' });
}

/** The first tick strictly after `after` (epoch ms), or undefined. */
export function nextTick(cron: Cron, after: number): number | undefined {
  return cron.nextRun(new Date(after))?.getTime();
}

export function dueTicks(cron: Cron, policy: MissedPolicy, window: TickWindow): DueTicks {
  const { floor, now } = window;
  const onTimeFrom = Math.min(window.onTimeFrom, now);
  const onTime: number[] = [];
  // croner's nextRun is strictly after its argument (at second precision), so start just
  // before the first instant that may be an on-time tick.
  let tick = nextTick(cron, Math.max(onTimeFrom, floor + 1) - 1);
  while (tick !== undefined && tick <= now && onTime.length < MAX_TICKS_PER_CHECK) {
    if (tick > floor && tick >= onTimeFrom) onTime.push(tick);
    tick = nextTick(cron, tick);
  }
  // The latest missed tick: before the on-time window, after the floor.
  let missed: number | undefined;
  if (onTimeFrom > floor + 1) {
    const previous = cron.previousRuns(1, new Date(onTimeFrom))[0]?.getTime();
    if (previous !== undefined && previous > floor) missed = previous;
  }
  const fire = missed !== undefined && policy === 'once' ? [missed, ...onTime] : onTime;
  const last = onTime.length > 0 ? onTime[onTime.length - 1] : missed;
  return { fire, last, missed };
}

/** The idempotency key of a tick's run: one run per flow and tick, whoever fires it. */
export function scheduleKey(flowName: string, tick: number): string {
  return `schedule:${flowName}:${new Date(tick).toISOString()}`;
}
