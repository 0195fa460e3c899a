/** lethe report inventory and lethe workspace close|reopen|purge. */
import type { Command } from 'commander';

export function registerInventoryCommands(program: Command, setExitCode: (code: number) => void): void {
  void program;
  void setExitCode;
}
