/** LETHE_REGIONS and LETHE_HOME_REGION: what they accept, and what they refuse with which message. */
import { describe, expect, it } from 'vitest';
import { placeRegions, regionsFromEnvironment } from '../../src/regions/config.js';

describe('regions from the environment', () => {
  it('has only the home region by default', () => {
    const config = regionsFromEnvironment({});
    expect(config).toEqual({ home: 'default', others: [] });
    expect(placeRegions(config, { dataDir: '/srv/lethe', databaseUrl: undefined })).toEqual([
      { name: 'default', url: undefined, dir: '/srv/lethe', home: true },
    ]);
  });

  it('reads PostgreSQL and SQLite regions, separated by spaces or commas', () => {
    const config = regionsFromEnvironment({
      LETHE_HOME_REGION: 'eu',
      LETHE_REGIONS: 'us=postgres://lethe:pw@db.us/lethe, ap=/srv/lethe-ap',
    });
    expect(config).toEqual({
      home: 'eu',
      others: [
        { name: 'us', url: 'postgres://lethe:pw@db.us/lethe' },
        { name: 'ap', dir: '/srv/lethe-ap' },
      ],
    });
    expect(placeRegions(config, { dataDir: '/srv/lethe', databaseUrl: 'postgres://db.eu/lethe' })).toEqual([
      { name: 'eu', url: 'postgres://db.eu/lethe', dir: '/srv/lethe', home: true },
      { name: 'us', url: 'postgres://lethe:pw@db.us/lethe', dir: '/srv/lethe/regions/us', home: false },
      { name: 'ap', url: undefined, dir: '/srv/lethe-ap', home: false },
    ]);
  });

  it.each([
    ['EU=/srv/x', /region name must be/],
    ['eu', /region name must be/],
    ['eu=', /no store after "="/],
    ['default=/srv/x', /named twice/],
    ['eu=/a eu=/b', /named twice/],
    ['eu=relative/dir', /folder path/],
  ])('refuses %s', (value, message) => {
    expect(() => regionsFromEnvironment({ LETHE_REGIONS: value })).toThrow(message);
  });

  it('never repeats a password from an entry it refuses', () => {
    expect(() => regionsFromEnvironment({ LETHE_REGIONS: 'EU=postgres://u:hunter2@db/x' })).toThrow(
      /postgres:\/\/u:\*\*\*@db\/x/,
    );
    try {
      regionsFromEnvironment({ LETHE_REGIONS: 'EU=postgres://u:hunter2@db/x' });
    } catch (error) {
      expect(String(error)).not.toContain('hunter2');
    }
  });

  it('refuses two regions on one store, and a bad home region name', () => {
    const config = regionsFromEnvironment({ LETHE_REGIONS: 'eu=/srv/lethe' });
    expect(() => placeRegions(config, { dataDir: '/srv/lethe', databaseUrl: undefined })).toThrow(
      /same store as another region/,
    );
    expect(() => regionsFromEnvironment({ LETHE_HOME_REGION: 'Home Region' })).toThrow(/not a region name/);
  });
});
