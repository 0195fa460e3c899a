/**
 * triggers — what starts runs besides API calls and webhooks: schedules (cron with time zones)
 * and polls (re-reading a source and firing on new or changed rows). One Triggers object
 * watches every enabled flow of the store and keeps its timers in step with flow changes.
 */
import type { ServerContext } from '../server/context.js';

export class Triggers {
  constructor(private readonly context: ServerContext) {}

  async start(): Promise<void> {
    void this.context;
  }

  async stop(): Promise<void> {}
}
