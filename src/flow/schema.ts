/**
 * The flow format's schema (SPEC 4.1), written once in TypeBox: it is both the TypeScript type
 * and the JSON Schema published at schema/flow.schema.json for editors. Command bodies come
 * from the command registry, so a new command extends the schema by itself.
 */
import Type, { type Static, type TSchema } from 'typebox';
import { COMMANDS } from '../commands/index.js';
import { STEP_ID_MESSAGE, STEP_ID_PATTERN, StepRef } from '../commands/shared.js';
import { COLUMN_TYPES } from '../table/types.js';

export const FLOW_NAME_PATTERN = '^[a-z0-9][a-z0-9_-]*$';
export const PARAM_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_]*$';
export const DURATION_PATTERN = '^[0-9]+(ms|s|m|h|d)$';

const Duration = Type.String({
  pattern: DURATION_PATTERN,
  errorMessage: 'must be a duration such as 500ms, 10s, 5m, 1h or 1d',
  description: 'A duration such as 500ms, 10s, 5m, 1h or 1d.',
});

export const PARAM_TYPES = COLUMN_TYPES;

export const ParamSchema = Type.Object(
  {
    type: Type.Enum(PARAM_TYPES, { description: 'string | number | integer | boolean | date | datetime' }),
    default: Type.Optional(Type.Unknown({ description: 'Used when the run does not give the parameter.' })),
    description: Type.Optional(Type.String()),
  },
  { additionalProperties: false, description: 'A run-time parameter, read as $params.<name>.' },
);

export const SIGNATURE_SCHEMES = ['generic', 'github', 'standard-webhooks'] as const;

/** How a webhook's requests are signed (SPEC 7); the secrets stay in a stored connection. */
export const WebhookSignatureSchema = Type.Object(
  {
    scheme: Type.Enum(SIGNATURE_SCHEMES, {
      description:
        'generic: X-Lethe-Signature: t=<unix s>,v1=<hex>; github: X-Hub-Signature-256; standard-webhooks: webhook-id/-timestamp/-signature.',
    }),
    connection: Type.String({
      pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$',
      errorMessage: 'must be the name of a stored webhook-secret connection',
      description: 'A stored webhook-secret connection holding secret (and previousSecret while rotating).',
    }),
    tolerance: Type.Optional(
      Type.String({
        pattern: DURATION_PATTERN,
        errorMessage: 'must be a duration such as 300s or 5m (at most 1h)',
        description: 'How far the signed timestamp may be from now, either way (default 300s, at most 1h).',
      }),
    ),
    header: Type.Optional(
      Type.String({
        pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
        errorMessage: 'must be an HTTP header name such as X-Lethe-Signature',
        description: 'generic only: the header carrying the signature (default X-Lethe-Signature).',
      }),
    ),
  },
  { additionalProperties: false, description: 'Refuse requests not signed with the connection’s secret.' },
);

export const TriggerSchema = Type.Object(
  {
    manual: Type.Optional(
      Type.Object({}, { additionalProperties: false, description: 'Run on demand only.' }),
    ),
    schedule: Type.Optional(
      Type.Object(
        {
          cron: Type.String({ minLength: 1, description: 'A cron expression (5 or 6 fields).' }),
          timezone: Type.Optional(
            Type.String({
              minLength: 1,
              description: 'IANA time zone, e.g. Asia/Tokyo (default: the flow’s timezone, else UTC).',
            }),
          ),
          missed: Type.Optional(
            Type.Enum(['once', 'skip'], {
              default: 'once',
              description:
                'Ticks missed while no server ran: once = fire the most recent one once; skip = fire none.',
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    webhook: Type.Optional(
      Type.Object(
        {
          path: Type.Optional(
            Type.String({
              pattern: '^[A-Za-z0-9][A-Za-z0-9_./-]*$',
              description: 'Path under /hooks/{workspace}/.',
            }),
          ),
          respond: Type.Optional(
            Type.Enum(['accepted', 'result'], {
              default: 'accepted',
              description: 'accepted: 202 after durable enqueue; result: the flow’s respond output.',
            }),
          ),
          timeout: Type.Optional(Duration),
          signature: Type.Optional(WebhookSignatureSchema),
        },
        { additionalProperties: false },
      ),
    ),
    poll: Type.Optional(
      Type.Object(
        {
          every: Duration,
          step: Type.String({
            pattern: STEP_ID_PATTERN,
            errorMessage: STEP_ID_MESSAGE,
            description: 'The input step to re-read; only this step runs when polling.',
          }),
          key: Type.Optional(
            Type.Array(Type.String({ minLength: 1 }), {
              minItems: 1,
              uniqueItems: true,
              description: 'Columns that identify a row: fires for unseen keys and for changed rows.',
            }),
          ),
          cursor: Type.Optional(
            Type.String({
              minLength: 1,
              description: 'A column that only grows (an id, a time): fires for rows above the last seen.',
            }),
          ),
          initial: Type.Optional(
            Type.Enum(['baseline', 'fire'], {
              default: 'baseline',
              description:
                'The first poll: baseline = remember the rows without firing; fire = fire for each.',
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false, description: 'What starts the flow; none means manual.' },
);

export const RetrySchema = Type.Object(
  {
    attempts: Type.Integer({ minimum: 1, maximum: 100, description: 'Total attempts, the first included.' }),
    backoff: Type.Optional(Type.Enum(['fixed', 'exponential'], { default: 'exponential' })),
    delay: Type.Optional(Duration),
  },
  { additionalProperties: false },
);

/** The top level, with steps left open: steps are checked one command at a time. */
export function topLevelSchema(steps: TSchema) {
  return Type.Object(
    {
      version: Type.Literal(1, { description: 'The flow format version.' }),
      name: Type.String({
        pattern: FLOW_NAME_PATTERN,
        maxLength: 100,
        errorMessage:
          'must be a slug: lowercase letters, digits, "_" and "-", starting with a letter or digit',
        description: 'A slug, unique in a workspace.',
      }),
      description: Type.Optional(Type.String()),
      privacy: Type.Optional(
        Type.Enum(['standard', 'confidential'], {
          default: 'standard',
          description: 'confidential: payloads never reach the store, logs or disk.',
        }),
      ),
      timezone: Type.Optional(
        Type.String({ minLength: 1, description: 'IANA time zone for dates in the flow (default UTC).' }),
      ),
      params: Type.Optional(
        Type.Record(Type.String(), ParamSchema, {
          // A pattern on the key type alone lets other names through: state the rule for all.
          propertyNames: {
            pattern: PARAM_NAME_PATTERN,
            errorMessage: 'must be a name of letters, digits and "_", not starting with a digit',
          },
        }),
      ),
      trigger: Type.Optional(TriggerSchema),
      retry: Type.Optional(RetrySchema),
      steps,
    },
    { additionalProperties: false },
  );
}

export const TopLevelSchema = topLevelSchema(Type.Array(Type.Unknown(), { minItems: 1 }));

/** Fields a step has besides its command. */
export const STEP_FIELDS = ['id', 'description', 'after'] as const;

export const StepIdSchema = Type.String({
  pattern: STEP_ID_PATTERN,
  errorMessage: STEP_ID_MESSAGE,
  description: 'Unique step id.',
});

/** Steps that must finish first although no data flows from them (e.g. write, then read back). */
export const StepAfterSchema = Type.Array(StepRef, {
  minItems: 1,
  uniqueItems: true,
  description: 'Steps that must finish before this one starts, without reading their output.',
});

/** The published JSON Schema: every step is one of the command shapes. */
export function flowJsonSchema(): Record<string, unknown> {
  const stepShapes = [...COMMANDS.values()].map((command) =>
    Type.Object(
      {
        id: StepIdSchema,
        description: Type.Optional(Type.String()),
        after: Type.Optional(StepAfterSchema),
        [command.name]: command.schema,
      },
      { additionalProperties: false, description: command.summary, title: command.name },
    ),
  );
  const schema = topLevelSchema(Type.Array(Type.Union(stepShapes), { minItems: 1 }));
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://lethe.dev/schema/flow.schema.json',
    title: 'Lethe flow',
    ...JSON.parse(JSON.stringify(schema)),
  };
}

export type ParamDefinition = Static<typeof ParamSchema>;
export type TriggerDefinition = Static<typeof TriggerSchema>;
export type RetryDefinition = Static<typeof RetrySchema>;
