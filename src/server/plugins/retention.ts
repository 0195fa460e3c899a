/**
 * Workspace privacy settings (retention overrides, legal hold, log access) and the retention
 * status:
 * - `GET/PUT /workspaces/{ws}/settings/privacy`: the settings of privacy/settings.ts; a PUT
 *   replaces them, checked against the schema and the deployment's bounds (400 otherwise);
 *   a change is recorded in the audit log and reaches a purge under way before its next batch.
 * - `GET /workspaces/{ws}/retention`: the effective period of each data class (and where it
 *   comes from, and the bounds), how many records the workspace has, how many are due, the
 *   oldest record's time, and the legal hold.
 */
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { retentionStatus } from '../../privacy/retention.js';
import { savePrivacySettings } from '../../privacy/retention-settings.js';
import { privacySettings, WorkspacePrivacySettings } from '../../privacy/settings.js';
import { actorOf, guard, scopeOf, workspaceOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { BODY_ERRORS, GUARDED_ERRORS, isoTime, MaybeTime, Time, WorkspaceParams } from './schemas.js';

const Bounds = Type.Union([Type.Object({ minDays: Type.Integer(), maxDays: Type.Integer() }), Type.Null()], {
  description: 'What the workspace may choose; null: the deployment alone decides (the audit chain)',
});

const ClassRetention = Type.Object({
  dataClass: Type.String(),
  retentionDays: Type.Integer({ description: 'The period in force, in days (see `unit`)' }),
  source: Type.Union([Type.Literal('deployment'), Type.Literal('workspace')]),
  clamped: Type.Boolean({ description: 'The workspace’s choice lies outside today’s bounds and was moved' }),
  bounds: Bounds,
  records: Type.Integer({ description: 'Records of this class the workspace has' }),
  due: Type.Integer({ description: 'Records old enough to go in the next purge (0 under legal hold)' }),
  oldestAt: MaybeTime,
  oldestAgeSeconds: Type.Union([Type.Integer(), Type.Null()]),
});

const RetentionReply = Type.Object({
  workspace: Type.String(),
  legalHold: Type.Boolean(),
  unit: Type.String({ description: 'day (in production); tests may shorten it' }),
  purging: Type.Boolean({ description: 'Whether this server purges continuously' }),
  classes: Type.Array(ClassRetention),
  lastPass: Type.Union([
    Type.Object({
      at: Time,
      durationMs: Type.Number(),
      purged: Type.Integer({ description: 'Records of this workspace that pass purged' }),
    }),
    Type.Null(),
  ]),
});

export async function retentionPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  app.get(
    '/workspaces/:ws/settings/privacy',
    {
      onRequest: guard(context, 'settings.read'),
      schema: {
        summary: 'The workspace’s privacy settings: retention overrides, legal hold, log access',
        tags: ['privacy'],
        params: WorkspaceParams,
        response: { 200: WorkspacePrivacySettings, ...GUARDED_ERRORS },
      },
    },
    async (request) => privacySettings(workspaceOf(request)),
  );

  app.put(
    '/workspaces/:ws/settings/privacy',
    {
      onRequest: guard(context, 'settings.write'),
      schema: {
        summary: 'Replace the workspace’s privacy settings (within the deployment’s retention bounds)',
        tags: ['privacy'],
        params: WorkspaceParams,
        body: WorkspacePrivacySettings,
        response: { 200: WorkspacePrivacySettings, ...GUARDED_ERRORS, ...BODY_ERRORS },
      },
    },
    async (request) => {
      const workspace = workspaceOf(request);
      const saved = await savePrivacySettings(
        scopeOf(request).audit,
        context.config.retention,
        workspace.id,
        request.body,
        actorOf(request),
      );
      // Payloads deleted by denying log access are purges too: counted like retention's.
      for (const { dataClass, count } of saved.purged)
        context.metrics.purgedRecords.inc({ data_class: dataClass }, count);
      if (saved.changed) {
        scopeOf(request).retention?.settingsChanged();
        scopeOf(request).runner.forgetWorkspace(workspace.id);
      }
      return saved.settings;
    },
  );

  app.get(
    '/workspaces/:ws/retention',
    {
      onRequest: guard(context, 'retention.read'),
      schema: {
        summary: 'Retention in force: the period of each data class, records, what is due, legal hold',
        tags: ['privacy'],
        params: WorkspaceParams,
        response: { 200: RetentionReply, ...GUARDED_ERRORS },
      },
    },
    async (request) => {
      const workspace = workspaceOf(request);
      const status = await retentionStatus(
        scopeOf(request).store,
        context.config.retention,
        workspace.id,
        scopeOf(request).retention?.lastPass,
      );
      const now = Date.now();
      return {
        workspace: workspace.name,
        legalHold: status.legalHold,
        unit: status.unit,
        purging: context.config.retention.purge.enabled,
        classes: status.classes.map((entry) => ({
          dataClass: entry.dataClass,
          retentionDays: entry.retentionDays,
          source: entry.source,
          clamped: entry.clamped,
          bounds: entry.bounds && { minDays: entry.bounds.min, maxDays: entry.bounds.max },
          records: entry.records,
          due: entry.due,
          oldestAt: entry.oldestAt === null ? null : isoTime(entry.oldestAt),
          oldestAgeSeconds:
            entry.oldestAt === null ? null : Math.max(0, Math.floor((now - entry.oldestAt) / 1000)),
        })),
        lastPass: status.lastPass
          ? {
              at: isoTime(status.lastPass.at),
              durationMs: status.lastPass.durationMs,
              purged: status.lastPass.purged,
            }
          : null,
      };
    },
  );
}
