#!/usr/bin/env node
// The `lethe` command: runs the bundled CLI in dist/ (npm install builds it via `prepare`).
if (process.env.LETHE_DEBUG === '1') process.setSourceMapsEnabled(true);
let cli;
try {
  cli = await import('../dist/main.js');
} catch (error) {
  if (error && error.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/main.js')) {
    process.stderr.write('lethe is not built yet: run `npm run build` (npm install does it for you).\n');
    process.exit(2);
  }
  throw error;
}
process.exitCode = await cli.main(process.argv.slice(2));
