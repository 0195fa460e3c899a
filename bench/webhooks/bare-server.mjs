// The floor: a bare Fastify server that parses the JSON body and answers, with no store, no
// queue and no engine. Mode "accept" answers 202 with an id; mode "result" computes what the
// Lethe flow computes (a total per category) and answers it.
import Fastify from 'fastify';
import { randomUUID } from 'node:crypto';

const [mode, port] = process.argv.slice(2);
const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
app.post('/hooks/default/:path', async (request, reply) => {
  const body = request.body;
  if (mode === 'accept') return reply.code(202).send({ runId: randomUUID() });
  const lines = Array.isArray(body) ? body : [body];
  const totals = new Map();
  for (const line of lines) {
    const entry = totals.get(line.category) ?? { category: line.category, lines: 0, amount: 0 };
    entry.lines++;
    entry.amount += line.qty * line.price;
    totals.set(line.category, entry);
  }
  const result = [...totals.values()];
  return reply.code(200).send(result.length === 1 ? result[0] : result);
});
const address = await app.listen({ port: Number(port), host: '127.0.0.1' });
process.stdout.write(`${address}\n`);
process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
