// Builds the `lethe` command: one ESM bundle (plus lazily loaded chunks) in dist/, so the CLI
// starts in about a tenth of a second instead of loading hundreds of modules one by one.
// Type checking is `npm run typecheck` (part of `npm run lint`); this step only compiles.
// The bundle is written to a fresh folder and swapped in, so a process starting `lethe` while
// another build runs never sees half a bundle.
import { build } from 'esbuild';
import { renameSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('../dist', import.meta.url));
const fresh = `${dist}.${process.pid}.new`;
const old = `${dist}.${process.pid}.old`;

await build({
  entryPoints: { main: 'src/cli/main.ts' },
  outdir: fresh,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  sourcemap: true,
  // Native and large drivers stay outside and load only when a flow needs them; Argon2 is a
  // native addon (a prebuilt binary per platform), loaded from node_modules.
  external: ['better-sqlite3', 'pg', 'pg-native', 'exceljs', '@node-rs/argon2'],
  // Some bundled CommonJS dependencies call require(): give ESM code one.
  banner: {
    js: "import { createRequire as __letheRequire } from 'node:module'; const require = __letheRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
try {
  renameSync(dist, old);
} catch (error) {
  if (error.code !== 'ENOENT') throw error;
}
renameSync(fresh, dist);
rmSync(old, { recursive: true, force: true });
