/**
 * commands — the registry of step commands (SPEC 4.1). Each command is one file here exporting
 * its schema, references, checks and implementation; adding one means adding a file and a line.
 */
import { autonumber } from './autonumber.js';
import type { CommandDefinition } from './command.js';
import { compute } from './compute.js';
import { distinct } from './distinct.js';
import { filter } from './filter.js';
import { group } from './group.js';
import { input } from './input.js';
import { join } from './join.js';
import { limit } from './limit.js';
import { output } from './output.js';
import { select } from './select.js';
import { sort } from './sort.js';
import { union } from './union.js';
import { unnest } from './unnest.js';

export const COMMANDS: ReadonlyMap<string, CommandDefinition<never>> = new Map(
  [input, filter, select, compute, join, union, group, sort, distinct, limit, unnest, autonumber, output].map(
    (command) => [command.name, command as unknown as CommandDefinition<never>],
  ),
);

export const COMMAND_NAMES: readonly string[] = [...COMMANDS.keys()];

export type { CommandDefinition, StepContext, CheckContext, Path, StepReference } from './command.js';
