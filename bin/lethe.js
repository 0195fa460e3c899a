#!/usr/bin/env node
// The `lethe` command: runs the compiled CLI (npm install builds it via the prepare script).
let cli;
try {
  cli = await import('../dist/cli/main.js');
} catch (error) {
  if (error && error.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/cli/main.js')) {
    process.stderr.write('lethe is not built yet: run `npm run build` (npm install does it for you).\n');
    process.exit(2);
  }
  throw error;
}
process.exitCode = await cli.main(process.argv.slice(2));
