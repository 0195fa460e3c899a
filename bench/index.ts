/**
 * `npm run bench -- <name> [options]`: benchmarks that run a reference side by side and print
 * ratios. They never run in `npm test`.
 */
import { editingBenchmark } from './editing/index.js';
import { purgeBenchmark } from './purge/index.js';
import { webhooksBenchmark } from './webhooks/index.js';

const benchmarks: Record<string, (args: string[]) => Promise<void>> = {
  editing: editingBenchmark,
  webhooks: () => webhooksBenchmark(),
  purge: () => purgeBenchmark(),
};

const [name, ...args] = process.argv.slice(2);
const benchmark = name === undefined ? undefined : benchmarks[name];
if (!benchmark) {
  console.error(`usage: npm run bench -- <${Object.keys(benchmarks).join('|')}> [options]`);
  console.error('  editing [--sizes 10000,100000,1000000] [--runs 3]');
  console.error('  webhooks            (BENCH_SECONDS=10 per case)');
  console.error('  purge               (BENCH_PURGE_RECORDS=1000000, BENCH_SECONDS=10 per case)');
  process.exit(2);
}
await benchmark(args);
