/**
 * The connections a flow names: its steps' (`connection:` in a step's body) and, with
 * `signing`, its webhook's signing secret first. One reading for run-time credentials (steps
 * only: a signature is checked before anyone could give credentials), the inventory and the
 * check that refuses to delete a connection a flow still needs.
 */
import type { Flow } from './validate.js';

export function connectionsOf(
  flow: Pick<Flow, 'steps' | 'trigger'>,
  options: { signing: boolean },
): string[] {
  const signing = options.signing ? flow.trigger?.webhook?.signature?.connection : undefined;
  const names: string[] = signing === undefined ? [] : [signing];
  for (const step of flow.steps) {
    const body = step.body as { connection?: unknown } | null;
    const name = body !== null && typeof body === 'object' ? body.connection : undefined;
    if (typeof name === 'string' && !names.includes(name)) names.push(name);
  }
  return names;
}
