/**
 * Webhooks in: `POST /hooks/{workspace}/{path}`. The body is read raw (within the size limit)
 * and decoded by content type — JSON, form, or anything else as text — into the trigger's
 * records. `respond: accepted` answers 202 with the run id only after the run, its input and
 * the gateway log entry are committed (group commit); `respond: result` waits for the run's
 * `respond` output, up to the flow's timeout. No token is needed: the path is the address, and
 * a flow with `trigger.webhook.signature` also needs a valid signature (../../triggers/signatures.ts),
 * checked — and a replayed event refused — before anything is stored or run, confidential flows
 * included: 401 BAD_SIGNATURE, 409 REPLAYED. Confidential flows (and every flow of a
 * workspace that denies log access) keep nothing: no body in the gateway log, the input in
 * memory only (a crash loses it: see docs/privacy.md), and a failure answers with the error's
 * class alone — as it does for every flow.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { LetheError } from '../../errors/index.js';
import { storesPayloads } from '../../runs/privacy.js';
import { parseDuration, type RunCompletion } from '../../runs/runner.js';
import { newId } from '../../store/ids.js';
import type { FlowRow } from '../../store/flows.js';
import type { Workspace } from '../../store/workspaces.js';
import {
  forgetEvents,
  loadSignatureCheck,
  rememberEvents,
  verifySignature,
  type SignatureCheck,
} from '../../triggers/signatures.js';
import { rowToRecord } from '../../table/index.js';
import type { ServerContext } from '../context.js';
import { HttpError } from '../http-errors.js';

const CACHE_MS = 2000;

interface Target {
  /** The context of the workspace's region: the run is made and run there. */
  scope: ServerContext;
  workspace: Workspace;
  flow: FlowRow;
  respond: 'accepted' | 'result';
  timeoutMs: number;
  /** Signed webhooks: the decrypted keys live no longer than this cache entry. */
  signature?: SignatureCheck;
  expires: number;
}

function isTextual(contentType: string | undefined): boolean {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  return (
    type === '' ||
    type === 'application/json' ||
    type.endsWith('+json') ||
    type === 'application/x-www-form-urlencoded' ||
    type.startsWith('text/') ||
    type === 'application/xml'
  );
}

/** The body as the gateway log keeps it: text as is, anything else as base64. */
function bodyText(body: Buffer, contentType: string | undefined): string {
  return isTextual(contentType) ? body.toString('utf8') : body.toString('base64');
}

/** The body as trigger records. Throws a 400 for JSON that does not parse. */
export function decodeBody(body: Buffer, contentType: string | undefined): unknown[] {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (body.length === 0) return [];
  if (type === 'application/json' || type.endsWith('+json')) {
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch (error) {
      const position = /position (\d+)/.exec((error as Error).message)?.[1];
      throw new HttpError(
        400,
        'INVALID_JSON',
        `the body is not valid JSON${position ? ` (at character ${Number(position) + 1})` : ''}`,
      );
    }
    if (Array.isArray(value)) {
      return value.map((item) =>
        item !== null && typeof item === 'object' && !Array.isArray(item) ? item : { value: item },
      );
    }
    return [value !== null && typeof value === 'object' ? value : { value }];
  }
  if (type === 'application/x-www-form-urlencoded') {
    const record: Record<string, string | string[]> = {};
    for (const [key, value] of new URLSearchParams(body.toString('utf8'))) {
      const existing = record[key];
      if (existing === undefined)
        Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
      else record[key] = Array.isArray(existing) ? [...existing, value] : [existing, value];
    }
    return [record];
  }
  return [{ body: bodyText(body, type), content_type: type || null }];
}

export async function hooksPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  const targets = new Map<string, Target>();
  context.hookTargets = { forget: () => targets.clear() };

  // Raw bodies for every content type, within the size limit (signatures need the raw bytes).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    '*',
    { parseAs: 'buffer', bodyLimit: context.config.bodyLimit },
    (_request, body, done) => {
      done(null, body);
    },
  );

  async function target(workspaceName: string, path: string): Promise<Target> {
    const key = `${workspaceName}\u0000${path}`;
    const now = Date.now();
    const cached = targets.get(key);
    if (cached && cached.expires > now) return cached;
    // The directory says which region's store holds the workspace.
    const entry = await context.home.workspaces.byName(workspaceName);
    if (entry?.status === 'moving') {
      targets.delete(key);
      throw new HttpError(
        503,
        'UNAVAILABLE',
        'the workspace is being moved to another region; retry shortly',
      );
    }
    const located = entry && (await context.deployment.resolve(entry));
    const scope = located && context.regions.get(located.region.spec.name);
    const workspace = located?.workspace;
    const flow = workspace && scope ? await scope.store.flows.byWebhookPath(workspace.id, path) : undefined;
    if (!scope || !workspace || !flow || flow.trigger_kind !== 'webhook' || flow.enabled !== 1) {
      targets.delete(key);
      throw new HttpError(404, 'NOT_FOUND', `no webhook at /hooks/${workspaceName}/${path}`);
    }
    const loaded = await scope.runner.flows.get(workspace.id, workspace.name, flow.name, flow.version);
    const webhook = loaded.flow.trigger?.webhook;
    const signature =
      webhook?.signature &&
      (await loadSignatureCheck(webhook.signature, scope.store, scope.vault, workspace.id));
    const found: Target = {
      scope,
      workspace,
      flow,
      respond: webhook?.respond ?? 'accepted',
      timeoutMs: parseDuration(webhook?.timeout, context.config.webhookTimeoutMs),
      ...(signature ? { signature } : {}),
      expires: now + CACHE_MS,
    };
    targets.set(key, found);
    return found;
  }

  app.post('/hooks/:ws/*', async (request: FastifyRequest, reply: FastifyReply) => {
    const { ws, '*': path } = request.params as { ws: string; '*': string };
    if (!context.isAccepting()) {
      throw new HttpError(503, 'SHUTTING_DOWN', 'the server is shutting down; retry shortly');
    }
    const hook = await target(ws, path);
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const contentType = request.headers['content-type'];
    let eventIds: string[] = [];
    if (hook.signature) {
      const verdict = verifySignature(hook.signature, request.headers, body, Date.now());
      if (!verdict.ok) {
        context.metrics.webhooks.inc({ status: '401' });
        throw new HttpError(401, 'BAD_SIGNATURE', verdict.message, SIGNATURE_HINT[hook.signature.scheme]);
      }
      eventIds = verdict.eventIds;
    }
    const payload = decodeBody(body, contentType);
    // Remembered only once the body decodes, so a 400 does not burn the event id.
    if (
      eventIds.length > 0 &&
      !(await rememberEvents(hook.scope.store, hook.workspace.id, hook.flow.name, eventIds, Date.now()))
    ) {
      context.metrics.webhooks.inc({ status: '409' });
      throw new HttpError(409, 'REPLAYED', 'this event was already received: a replayed webhook is refused');
    }
    /** Makes the run; if that fails, the sender's retry of this event must not be taken for a replay. */
    const making = async <T>(make: () => Promise<T>): Promise<T> => {
      try {
        return await make();
      } catch (error) {
        await forgetEvents(hook.scope.store, hook.workspace.id, hook.flow.name, eventIds);
        throw error;
      }
    };
    const idempotencyKey = headerValue(request.headers['idempotency-key']);
    const now = Date.now();
    const gateway = {
      id: newId(now),
      workspace_id: hook.workspace.id,
      path,
      flow_name: hook.flow.name,
      received_at: now,
      method: request.method,
      content_type: contentType ?? null,
      size: body.length,
      status: hook.respond === 'accepted' ? 202 : 200,
      // Not even built for runs that keep no payloads (the run service would drop it anyway).
      body:
        body.length === 0 || !storesPayloads(hook.flow.privacy, hook.workspace)
          ? null
          : bodyText(body, contentType),
    };
    const runsAt = (runId: string) => `/api/v1/workspaces/${hook.workspace.name}/runs/${runId}`;
    const stillRunning = (runId: string) => {
      context.metrics.webhooks.inc({ status: '202' });
      return reply
        .code(202)
        .header('location', runsAt(runId))
        .send({ runId, status: 'running', message: 'the run did not finish in time; read it later' });
    };
    let completion: RunCompletion | undefined;
    let runId: string;
    if (hook.respond === 'result' && idempotencyKey === undefined) {
      // Answered with the result and not to be deduplicated: run at once, written once at its end.
      const running = await making(() =>
        hook.scope.runs.runNow({
          workspace: hook.workspace,
          flow: hook.flow,
          trigger: 'webhook',
          payload,
          gateway,
        }),
      );
      // If the caller stops waiting, a later failure must not go unhandled.
      running.completion.catch(() => undefined);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(resolve, hook.timeoutMs, 'timeout');
      });
      const first = await Promise.race([running.completion, timeout]);
      clearTimeout(timer);
      if (first === 'timeout') {
        // The caller stops waiting: write the run now, so it can be read and survives a crash.
        await hook.scope.runner.persistDirect(running.runId);
        return stillRunning(running.runId);
      }
      completion = first;
      runId = first.runId;
    } else {
      const { run, duplicate } = await making(() =>
        hook.scope.runs.create({
          workspace: hook.workspace,
          flow: hook.flow,
          trigger: 'webhook',
          payload,
          idempotencyKey,
          urgent: hook.respond === 'result',
          gateway,
        }),
      );
      runId = run.id;
      if (hook.respond === 'accepted' || duplicate) {
        context.metrics.webhooks.inc({ status: '202' });
        return reply.code(202).send({ runId: run.id, ...(duplicate ? { duplicate: true } : {}) });
      }
      completion = await hook.scope.runner.waitFor(run.id, hook.timeoutMs);
    }
    if (!completion || completion.status === 'requeued') return stillRunning(runId);
    if (completion.status !== 'succeeded') {
      context.metrics.webhooks.inc({ status: '502' });
      const error = completion.error ?? new LetheError('INTERNAL', 'the run failed');
      return reply.code(502).send({ runId, status: completion.status, error: { code: error.code } });
    }
    context.metrics.webhooks.inc({ status: '200' });
    const table = completion.response;
    if (!table) return reply.code(204).send();
    const records = table.rows.map((row) => rowToRecord(table.columns, row));
    return reply.code(200).send(records.length === 1 ? records[0] : records);
  });
}

/** Where the signing scheme is described, for a refused sender's operator. */
const SIGNATURE_HINT: Record<SignatureCheck['scheme'], string> = {
  generic: 'sign "<t>.<raw body>" with HMAC-SHA256 and send t=<unix seconds>,v1=<hex> (docs/triggers.md)',
  github: "set the GitHub webhook's secret to the connection's secret (docs/triggers.md)",
  'standard-webhooks': 'send webhook-id, webhook-timestamp and webhook-signature per standardwebhooks.com',
};

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
