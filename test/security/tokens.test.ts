import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { LetheError } from '../../src/errors/index.js';
import { createToken, hashToken, verifyToken } from '../../src/security/tokens.js';
import { describeStores, uniqueName, useStore } from '../store/support.js';

await describeStores('API tokens', (kind) => {
  const ctx = useStore(kind);
  const workspace = async () => (await ctx.store.workspaces.ensure(uniqueName())).id;
  const NOW = 1_800_000_000_000;

  it('a created token verifies to its workspace and role', async () => {
    const ws = await workspace();
    const other = await workspace();
    const editor = await createToken(ctx.store.tokens, { workspaceId: ws, role: 'editor', name: 'ci' });
    const viewer = await createToken(ctx.store.tokens, { workspaceId: other, role: 'viewer' });
    expect(editor.token).toMatch(/^lethe_[A-Za-z0-9_-]{43}$/);
    expect(editor.token).not.toBe(viewer.token);
    expect(await verifyToken(ctx.store.tokens, editor.token, NOW)).toEqual({
      kind: 'token',
      tokenId: editor.id,
      workspaceId: ws,
      role: 'editor',
    });
    expect(await verifyToken(ctx.store.tokens, viewer.token, NOW)).toEqual({
      kind: 'token',
      tokenId: viewer.id,
      workspaceId: other,
      role: 'viewer',
    });
    const listed = await ctx.store.tokens.list(ws);
    expect(listed).toEqual([
      expect.objectContaining({ id: editor.id, role: 'editor', name: 'ci', expires_at: null }),
    ]);
    expect(listed[0]).not.toHaveProperty('token_hash');
  });

  it('stores only the SHA-256 of the token, never the token', async () => {
    const ws = await workspace();
    const { id, token } = await createToken(ctx.store.tokens, { workspaceId: ws, role: 'admin' });
    const row = (await ctx.store.tokens.list(ws)).find((candidate) => candidate.id === id);
    expect(row).toBeDefined();
    const sha = createHash('sha256').update(token).digest('hex');
    expect(hashToken(token)).toBe(sha);
    expect((await ctx.store.tokens.byHash(sha))?.id).toBe(id);
    const secretPart = token.slice('lethe_'.length);
    if (ctx.store.dialect === 'sqlite') {
      const files = readdirSync(ctx.place.dataDir).filter((name) => name.startsWith('lethe.db'));
      const bytes = Buffer.concat(files.map((file) => readFileSync(join(ctx.place.dataDir, file))));
      expect(bytes.includes(sha)).toBe(true);
      expect(bytes.includes(secretPart)).toBe(false);
    } else {
      const rows = await sql<{ row: string }>`select t::text as row from api_tokens t`.execute(ctx.store.db);
      const text = rows.rows.map((r) => r.row).join('\n');
      expect(text).toContain(sha);
      expect(text).not.toContain(secretPart);
    }
  });

  it('refuses revoked and expired tokens', async () => {
    const ws = await workspace();
    const revoked = await createToken(ctx.store.tokens, { workspaceId: ws, role: 'admin' });
    expect(await ctx.store.tokens.revoke(ws, revoked.id, NOW - 1)).toBe(true);
    expect(await verifyToken(ctx.store.tokens, revoked.token, NOW)).toBeUndefined();

    const expiring = await createToken(ctx.store.tokens, { workspaceId: ws, role: 'admin', expiresAt: NOW });
    expect((await verifyToken(ctx.store.tokens, expiring.token, NOW - 1))?.tokenId).toBe(expiring.id);
    expect(await verifyToken(ctx.store.tokens, expiring.token, NOW)).toBeUndefined();
    expect(await verifyToken(ctx.store.tokens, expiring.token, NOW + 1)).toBeUndefined();
  });

  it('refuses unknown roles when made, and a stored role it does not know', async () => {
    const ws = await workspace();
    for (const role of ['root', 'Admin', '', 'owner ']) {
      const error = await createToken(ctx.store.tokens, { workspaceId: ws, role }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LetheError);
      expect(error).toMatchObject({
        code: 'USAGE',
        message: `unknown role "${role}": use owner, admin, editor or viewer`,
      });
    }
    expect(await ctx.store.tokens.list(ws)).toEqual([]);
    for (const role of ['owner', 'admin', 'editor', 'viewer']) {
      const made = await createToken(ctx.store.tokens, { workspaceId: ws, role });
      expect((await verifyToken(ctx.store.tokens, made.token, NOW))?.role).toBe(role);
    }
    const tampered = await createToken(ctx.store.tokens, { workspaceId: ws, role: 'viewer' });
    await ctx.store.db
      .updateTable('api_tokens')
      .set({ role: 'superuser' })
      .where('id', '=', tampered.id)
      .execute();
    expect(await verifyToken(ctx.store.tokens, tampered.token, NOW)).toBeUndefined();
  });

  it('refuses strings that are not its tokens', async () => {
    const ws = await workspace();
    const { token } = await createToken(ctx.store.tokens, { workspaceId: ws, role: 'admin' });
    const body = token.slice('lethe_'.length);
    for (const wrong of [
      '',
      body,
      `Bearer ${token}`,
      token.toUpperCase(),
      `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`,
      `${token}x`,
      `lethe_${'a'.repeat(300)}`,
    ]) {
      expect(await verifyToken(ctx.store.tokens, wrong, NOW), wrong).toBeUndefined();
    }
    // Looking a token up by its hash (what a stolen database holds) does not work as a token.
    expect(await verifyToken(ctx.store.tokens, `lethe_${hashToken(token)}`, NOW)).toBeUndefined();
    expect(await verifyToken(ctx.store.tokens, hashToken(token), NOW)).toBeUndefined();
  });
});
