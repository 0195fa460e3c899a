/**
 * The Store: one object giving the server every repository over one database, and the group
 * committer that batches hot-path writes (webhook intake, run results).
 */
import type { Kysely } from 'kysely';
import { StoreCounterStore } from './counters.js';
import { openDatabase, type DialectName, type OpenOptions } from './database.js';
import { FlowRepository } from './flows.js';
import { GroupCommit } from './group-commit.js';
import { MembershipRepository, SessionRepository, UserRepository, UserTokenRepository } from './people.js';
import {
  ConnectionRepository,
  GatewayLogRepository,
  NotificationRepository,
  TokenRepository,
  TriggerStateRepository,
  WorkspaceKeyRepository,
} from './records.js';
import { RunRepository } from './runs.js';
import { Statements } from './statements.js';
import type { Database } from './schema.js';
import { WorkspaceRepository } from './workspaces.js';

export class Store {
  readonly workspaces: WorkspaceRepository;
  readonly workspaceKeys: WorkspaceKeyRepository;
  readonly flows: FlowRepository;
  readonly connections: ConnectionRepository;
  readonly tokens: TokenRepository;
  readonly runs: RunRepository;
  readonly gatewayLog: GatewayLogRepository;
  readonly notifications: NotificationRepository;
  readonly triggerState: TriggerStateRepository;
  readonly counters: StoreCounterStore;
  readonly commits: GroupCommit;
  /** People (home region): users, memberships, console sessions, invite and reset tokens. */
  readonly users: UserRepository;
  readonly memberships: MembershipRepository;
  readonly sessions: SessionRepository;
  readonly userTokens: UserTokenRepository;

  private constructor(
    readonly db: Kysely<Database>,
    readonly dialect: DialectName,
    readonly location: string,
    private readonly closeDatabase: () => Promise<void>,
  ) {
    this.workspaces = new WorkspaceRepository(db);
    this.workspaceKeys = new WorkspaceKeyRepository(db);
    this.flows = new FlowRepository(db);
    this.connections = new ConnectionRepository(db);
    this.tokens = new TokenRepository(db);
    const statements = new Statements(db);
    this.runs = new RunRepository(db, statements);
    this.gatewayLog = new GatewayLogRepository(db, statements);
    this.notifications = new NotificationRepository(db);
    this.triggerState = new TriggerStateRepository(db);
    this.counters = new StoreCounterStore(db);
    this.commits = new GroupCommit(db);
    this.users = new UserRepository(db);
    this.memberships = new MembershipRepository(db);
    this.sessions = new SessionRepository(db);
    this.userTokens = new UserTokenRepository(db);
  }

  /** Open (and migrate) the store: PostgreSQL when `url` is given, otherwise SQLite in `dataDir`. */
  static async open(options: OpenOptions): Promise<Store> {
    const opened = await openDatabase(options);
    return new Store(opened.db, opened.dialect, opened.location, opened.close);
  }

  /** Whether the database answers (for /readyz). */
  async ping(): Promise<boolean> {
    try {
      await this.db.selectFrom('workspaces').select('id').limit(1).execute();
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.commits.close();
    await this.closeDatabase();
  }
}

export type { Database } from './schema.js';
