// The reference: the same query in DuckDB, on the same files, in its own process (so its
// start-up and peak memory are measured like Lethe's). Prints one JSON line.
import { DuckDBInstance } from '@duckdb/node-api';

const [orders, customers, out] = process.argv.slice(2);
const started = performance.now();
const instance = await DuckDBInstance.create(':memory:');
const connection = await instance.connect();
const quote = (path) => `'${path.replaceAll("'", "''")}'`;
await connection.run(`
  copy (
    select c.region, c.segment,
           count(*) as orders,
           sum(o.amount) as total,
           avg(o.amount) as average,
           max(o.amount) as largest
    from read_csv(${quote(orders)}, header = true) o
    join read_csv(${quote(customers)}, header = true) c on o.customer_id = c.id
    where o.status = 'paid' and o.amount > 0
    group by c.region, c.segment
    order by total desc, c.region
  ) to ${quote(out)} (header, delimiter ',')`);
const ms = performance.now() - started;
connection.closeSync();
instance.closeSync();
process.stdout.write(`${JSON.stringify({ ms, peakRssBytes: process.resourceUsage().maxRSS * 1024 })}\n`);
