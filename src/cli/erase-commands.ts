/** lethe erase (data-subject erasure requests). */
import type { Command } from 'commander';

export function registerErasureCommands(program: Command, setExitCode: (code: number) => void): void {
  void program;
  void setExitCode;
}
