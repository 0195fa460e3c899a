/**
 * Tests against real services (PostgreSQL, and later others) run when the service answers.
 * When it does not, they are skipped with a loud warning — unless LETHE_REQUIRE_SERVICES=1
 * (as in CI), where a missing service fails the run instead of passing it silently.
 */
import pg from 'pg';
import { describe, it } from 'vitest';

export interface TestService {
  /** For messages: "PostgreSQL". */
  name: string;
  /** The environment variable that points the tests at the service. */
  envVar: string;
  available(): Promise<boolean>;
}

export function servicesRequired(): boolean {
  return process.env.LETHE_REQUIRE_SERVICES === '1';
}

/**
 * `describe` that runs when the service is available. Call it with `await` at the top level of
 * a test file: whether to skip must be known while vitest collects the tests.
 */
export async function describeWithService(
  service: TestService,
  title: string,
  body: () => void,
): Promise<void> {
  if (await service.available()) {
    describe(title, body);
    return;
  }
  const absent = `${service.name} is not reachable: set ${service.envVar} to a server the tests may use`;
  if (servicesRequired()) {
    describe(title, () => {
      it(`needs ${service.name}`, () => {
        throw new Error(`${absent} (LETHE_REQUIRE_SERVICES=1 makes this a failure)`);
      });
    });
    return;
  }
  console.warn(
    `\n*** SKIPPED "${title}": ${absent}, or set LETHE_REQUIRE_SERVICES=1 to fail instead of skipping. ***\n`,
  );
  describe.skip(title, body);
}

export const PG_URL_VARIABLE = 'LETHE_TEST_PG_URL';

/** The PostgreSQL server for tests: $LETHE_TEST_PG_URL, or a local one with trust auth. */
export function pgUrl(): string {
  return process.env[PG_URL_VARIABLE] ?? 'postgres://postgres@127.0.0.1:5432/test';
}

// The test database is on loopback, which the egress layer refuses unless the deployment allows
// it (src/egress): tests allow it the way an operator would. Egress tests set their own policy.
process.env.LETHE_EGRESS_ALLOW ??= `127.0.0.1 ${new URL(pgUrl()).hostname}`;

export async function pgAvailable(url: string = pgUrl()): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  // A failed connection may still report an error event after connect() rejects.
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export const postgresService: TestService = {
  name: 'PostgreSQL',
  envVar: PG_URL_VARIABLE,
  available: () => pgAvailable(pgUrl()),
};

export function describeWithPostgres(title: string, body: () => void): Promise<void> {
  return describeWithService(postgresService, title, body);
}
