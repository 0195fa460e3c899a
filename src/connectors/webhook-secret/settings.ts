/**
 * Settings of a webhook-secret connection: the shared secret that signed webhooks are checked
 * against, and the one it replaces while senders move over (both are accepted until
 * `previousSecret` is removed). Both are secrets, so the vault holds them and no read returns them.
 */
import Type, { type Static } from 'typebox';

export const webhookSecretSettingsSchema = Type.Object(
  {
    secret: Type.String({
      minLength: 1,
      description:
        'The signing secret (a secret). Standard Webhooks: whsec_<base64>; GitHub and generic: the text as given.',
    }),
    previousSecret: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'The secret being rotated out (a secret): accepted too until removed.',
      }),
    ),
  },
  { additionalProperties: false, description: 'Secrets for checking signed webhooks in.' },
);

export type WebhookSecretSettings = Static<typeof webhookSecretSettingsSchema>;

export const WEBHOOK_SECRET_SETTINGS = ['secret', 'previousSecret'] as const;
