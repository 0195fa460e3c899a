/**
 * The plan of a run: for every step, the steps it reads (in the order its command wants them),
 * the steps it waits for (its inputs and its `after` steps) and how many steps read it, so the
 * executor can start a step as soon as it may and free a table once its last reader is done.
 */
import type { Flow, FlowStep } from '../flow/validate.js';

export interface PlannedStep {
  step: FlowStep;
  /** Steps whose tables this one reads, in the command's order. */
  inputs: string[];
  /** Steps that must finish first: its inputs and its `after` steps. */
  waitsFor: string[];
  readers: number;
  /** Every step this one depends on, directly or not. */
  ancestors: Set<string>;
}

export function planFlow(flow: Flow): Map<string, PlannedStep> {
  const plan = new Map<string, PlannedStep>();
  for (const step of flow.steps) {
    plan.set(step.id, {
      step,
      inputs: step.references.map((reference) => reference.step),
      waitsFor: [...new Set([...step.references, ...step.after].map((reference) => reference.step))],
      readers: 0,
      ancestors: new Set(),
    });
  }
  for (const planned of plan.values()) {
    for (const input of new Set(planned.inputs)) plan.get(input)!.readers++;
  }
  // Validation guarantees a DAG; resolve ancestors with memoised depth-first search.
  const resolved = new Set<string>();
  const resolve = (id: string): Set<string> => {
    const planned = plan.get(id)!;
    if (resolved.has(id)) return planned.ancestors;
    for (const input of planned.inputs) {
      planned.ancestors.add(input);
      for (const ancestor of resolve(input)) planned.ancestors.add(ancestor);
    }
    resolved.add(id);
    return planned.ancestors;
  };
  for (const id of plan.keys()) resolve(id);
  return plan;
}
