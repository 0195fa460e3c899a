/**
 * Regions: where a workspace's data lives. `LETHE_REGIONS` maps region names to stores:
 *
 *     LETHE_REGIONS="eu=postgres://lethe@db.eu.internal/lethe us=/srv/lethe-us"
 *
 * A store is a PostgreSQL URL or a directory (SQLite, `lethe.db` inside). Each region also has a
 * folder for its workspaces' files: the directory itself for SQLite regions, otherwise
 * `<data-dir>/regions/<name>`. The deployment's own store (LETHE_DATABASE_URL, or SQLite in the
 * data dir) is the home region, named by `LETHE_HOME_REGION` (default `default`): it also
 * holds the directory (workspace names and regions, API tokens, users).
 */
import { isAbsolute, join, resolve } from 'node:path';
import { LetheError } from '../errors/index.js';

export const REGION_NAME = /^[a-z][a-z0-9-]{0,31}$/;
export const DEFAULT_REGION = 'default';

export interface RegionSpec {
  name: string;
  /** postgres:// URL; SQLite in `dir` when absent. */
  url: string | undefined;
  /** The SQLite store's folder, and the workspaces' files (`<dir>/files/<workspace>`). */
  dir: string;
  home: boolean;
}

type Environment = Readonly<Record<string, string | undefined>>;

/** The regions a deployment is configured with (from the environment), before they are placed. */
export interface RegionsConfig {
  /** The home region's name (LETHE_HOME_REGION). */
  home: string;
  /** LETHE_REGIONS, in order: a PostgreSQL URL, or a folder for SQLite. */
  others: { name: string; url?: string; dir?: string }[];
}

function isPostgresUrl(value: string): boolean {
  return /^postgres(ql)?:\/\//i.test(value);
}

/** Read LETHE_HOME_REGION and LETHE_REGIONS; wrong entries are errors naming the entry. */
export function regionsFromEnvironment(env: Environment = process.env): RegionsConfig {
  const home = env.LETHE_HOME_REGION?.trim() || DEFAULT_REGION;
  if (!REGION_NAME.test(home)) {
    throw new LetheError('USAGE', `LETHE_HOME_REGION "${home}" is not a region name`, {
      hint: 'use a-z, 0-9 and "-", starting with a letter (e.g. eu, us-east)',
    });
  }
  const names = new Set([home]);
  const others: RegionsConfig['others'] = [];
  for (const entry of (env.LETHE_REGIONS ?? '').split(/[\s,]+/).filter(Boolean)) {
    const at = entry.indexOf('=');
    const name = at > 0 ? entry.slice(0, at) : '';
    const store = at > 0 ? entry.slice(at + 1) : '';
    const problem = (what: string) =>
      new LetheError('USAGE', `LETHE_REGIONS entry "${redactEntry(entry)}": ${what}`, {
        hint: 'entries are name=postgres://… or name=/path/to/folder, separated by spaces or commas',
      });
    if (!REGION_NAME.test(name))
      throw problem('the region name must be a-z, 0-9 and "-", starting with a letter');
    if (store === '') throw problem('no store after "="');
    if (names.has(name)) throw problem(`region "${name}" is named twice (the home region is "${home}")`);
    names.add(name);
    if (isPostgresUrl(store)) {
      others.push({ name, url: store });
    } else if (isAbsolute(store) || store.startsWith('.')) {
      others.push({ name, dir: resolve(store) });
    } else {
      throw problem('a SQLite region is a folder path (absolute, or starting with ./)');
    }
  }
  return { home, others };
}

/**
 * Every region of a deployment, the home region first: the home region is the deployment's own
 * store (`databaseUrl`, or SQLite in `dataDir`). Two regions on one store are refused.
 */
export function placeRegions(
  config: RegionsConfig,
  home: { dataDir: string; databaseUrl: string | undefined },
): RegionSpec[] {
  const regions: RegionSpec[] = [
    { name: config.home, url: home.databaseUrl, dir: home.dataDir, home: true },
    ...config.others.map((region) => ({
      name: region.name,
      url: region.url,
      dir: region.dir ?? join(home.dataDir, 'regions', region.name),
      home: false,
    })),
  ];
  const places = new Set<string>();
  for (const region of regions) {
    const place = region.url ?? region.dir;
    if (places.has(place)) {
      throw new LetheError('USAGE', `region "${region.name}" uses the same store as another region`, {
        hint: 'each region needs a store of its own: a database, or a folder for SQLite',
      });
    }
    places.add(place);
  }
  return regions;
}

/** An entry without a URL's password, for messages. */
function redactEntry(entry: string): string {
  return entry.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@');
}
