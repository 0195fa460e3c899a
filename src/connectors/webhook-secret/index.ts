/**
 * webhook-secret — holds the secrets that signed webhooks in are checked with
 * (`trigger.webhook.signature.connection`). It opens nothing: steps cannot read or write
 * through it, so the secret never reaches a flow's data.
 */
import { LetheError } from '../../errors/index.js';
import type { Connector } from '../connector.js';
import { WEBHOOK_SECRET_SETTINGS, webhookSecretSettingsSchema } from './settings.js';

export const webhookSecretConnector: Connector = {
  type: 'webhook-secret',
  summary:
    'Secrets for signed webhooks in: secret, and previousSecret while rotating. Named by trigger.webhook.signature.connection; steps cannot use it.',
  settingsSchema: webhookSecretSettingsSchema,
  secretSettings: WEBHOOK_SECRET_SETTINGS,
  fileSettings: [],
  open: (connection) =>
    Promise.reject(
      new LetheError(
        'CONNECTION_ERROR',
        `connection "${connection.name}" is a webhook-secret: it only holds secrets for checking webhook signatures`,
        { hint: 'steps read and write through sqlite, postgres or http connections' },
      ),
    ),
};
