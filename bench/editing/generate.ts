/**
 * Deterministic benchmark data: N orders and 10,000 customers as CSV. The same seed gives the
 * same bytes on every machine, so runs compare.
 */
import { createWriteStream, existsSync } from 'node:fs';
import { once } from 'node:events';

/** mulberry32: a tiny seeded PRNG, good enough for test data. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const REGIONS = ['North', 'South', 'East', 'West', 'Central', 'Islands'];
const SEGMENTS = ['retail', 'wholesale', 'online'];
const COUNTRIES = ['JP', 'DE', 'FR', 'BR', 'US', 'IN', 'KE', 'SE'];
const STATUSES = ['paid', 'paid', 'paid', 'pending', 'refunded', 'cancelled'];
const CHANNELS = ['web', 'store', 'phone', 'partner'];
export const CUSTOMERS = 10_000;

async function writeLines(
  path: string,
  header: string,
  count: number,
  line: (i: number) => string,
): Promise<void> {
  const out = createWriteStream(path);
  out.write(`${header}\n`);
  let buffer = '';
  for (let i = 1; i <= count; i++) {
    buffer += `${line(i)}\n`;
    if (buffer.length > 1 << 16) {
      if (!out.write(buffer)) await once(out, 'drain');
      buffer = '';
    }
  }
  out.end(buffer);
  await once(out, 'finish');
}

export async function generateCustomers(path: string): Promise<void> {
  if (existsSync(path)) return;
  const next = random(42);
  await writeLines(path, 'id,name,region,segment,country', CUSTOMERS, (i) => {
    const region = REGIONS[Math.floor(next() * REGIONS.length)]!;
    const segment = SEGMENTS[Math.floor(next() * SEGMENTS.length)]!;
    const country = COUNTRIES[Math.floor(next() * COUNTRIES.length)]!;
    return `C${String(i).padStart(6, '0')},"Customer ${i}",${region},${segment},${country}`;
  });
}

export async function generateOrders(path: string, count: number): Promise<void> {
  if (existsSync(path)) return;
  const next = random(7 + count);
  await writeLines(path, 'order_id,customer_id,ordered_on,status,amount,quantity,channel', count, (i) => {
    // A few orders point at customers that do not exist, as real data does.
    const customer = 1 + Math.floor(next() * (CUSTOMERS + 50));
    const month = 1 + Math.floor(next() * 12);
    const day = 1 + Math.floor(next() * 28);
    const status = STATUSES[Math.floor(next() * STATUSES.length)]!;
    const amount = next() < 0.01 ? '' : (Math.floor(next() * 100_000) / 100).toFixed(2);
    const quantity = 1 + Math.floor(next() * 9);
    const channel = CHANNELS[Math.floor(next() * CHANNELS.length)]!;
    return `${i},C${String(customer).padStart(6, '0')},2026-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')},${status},${amount},${quantity},${channel}`;
  });
}
