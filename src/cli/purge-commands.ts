/** lethe purge [--dry-run] and lethe audit verify (retention engine). */
import type { Command } from 'commander';

export function registerRetentionCommands(program: Command, setExitCode: (code: number) => void): void {
  void program;
  void setExitCode;
}
