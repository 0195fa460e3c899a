/**
 * The web console's first pages, server-rendered, no framework: `/login`, `/account` (who you
 * are, your workspaces and roles, sign out, change your password), `/invite` and `/reset`
 * (set a password with the token in the link's fragment, which never reaches a server log).
 * Every dynamic value is HTML-escaped; the one script and the one style carry this response's
 * CSP nonce (`'strict-dynamic'`, nothing inline without it, no `unsafe-inline`).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { html, Html } from '../../privacy/inventory-render.js';
import { CSRF_HEADER } from '../../security/sessions.js';
import type { ServerContext } from '../context.js';
import { peopleOf, sessionIdOf } from '../people.js';
import { PAGE_HELMET } from '../web.js';

const STYLE = `
body{font:16px/1.45 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}label{display:block;margin:.6rem 0 .2rem}
input{font:inherit;padding:.35rem;width:100%;box-sizing:border-box}
button{font:inherit;margin-top:.8rem;padding:.35rem .9rem}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.3rem;text-align:left}
.message{min-height:1.4em;color:#a00}.ok{color:#070}
`;

/**
 * One script for every page: forms post JSON to the auth API; the CSRF token comes from the
 * page's meta tag and is replaced when the session gets a new id.
 */
const SCRIPT = `
(() => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const say = (form, text, ok) => {
    const out = form.querySelector('.message');
    out.textContent = text;
    out.className = ok ? 'message ok' : 'message';
  };
  const post = async (url, body) => {
    const headers = { 'content-type': 'application/json' };
    if (meta) headers['${CSRF_HEADER}'] = meta.content;
    const response = await fetch(url, { method: 'POST', headers, credentials: 'same-origin', body: JSON.stringify(body) });
    let data = {};
    try { data = await response.json(); } catch { data = {}; }
    return { ok: response.ok, data };
  };
  const token = () => decodeURIComponent(location.hash.slice(1));
  const actions = {
    login: (f) => post('/api/v1/auth/login', { email: f.email.value, password: f.password.value }),
    password: (f) => post('/api/v1/auth/password', { currentPassword: f.current.value, newPassword: f.password.value }),
    invite: (f) => post('/api/v1/auth/invites/accept', { token: token(), password: f.password.value }),
    reset: (f) => post('/api/v1/auth/reset', { token: token(), password: f.password.value }),
    logout: () => post('/api/v1/auth/logout', {}),
  };
  const next = { login: '/account', invite: '/account', reset: '/login', logout: '/login' };
  for (const form of document.querySelectorAll('form[data-action]')) {
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const action = form.dataset.action;
      if (form.confirm && form.confirm.value !== form.password.value) return say(form, 'The passwords differ.');
      const { ok, data } = await actions[action](form);
      if (!ok) return say(form, (data.error && data.error.message) || 'That did not work.');
      if (data.csrfToken && meta) meta.content = data.csrfToken;
      if (next[action]) location.assign(next[action]);
      else { form.reset(); say(form, 'Done.', true); }
    });
  }
})();
`;

function page(reply: FastifyReply, title: string, body: Html, csrfToken?: string): string {
  const nonce = reply.cspNonce as { script: string; style: string };
  reply
    .type('text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('x-content-type-options', 'nosniff');
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        ${csrfToken === undefined ? '' : html`<meta name="csrf-token" content="${csrfToken}" />`}
        <title>${title} — Lethe</title>
        <style nonce="${nonce.style}">
          ${new Html(STYLE)}
        </style>
      </head>
      <body>
        ${body}
        <script nonce="${nonce.script}">
          ${new Html(SCRIPT)};
        </script>
      </body>
    </html> `.text;
}

const passwordFields = (confirm: boolean) =>
  html`<label for="password">New password (8 or more characters)</label>
    <input id="password" name="password" type="password" autocomplete="new-password" minlength="8" required />
    ${
      confirm
        ? html`<label for="confirm">The same again</label>
            <input id="confirm" name="confirm" type="password" autocomplete="new-password" required />`
        : ''
    }`;

export async function consolePlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  const people = peopleOf(context);
  const options = { helmet: PAGE_HELMET, schema: { hide: true } };

  app.get('/login', options, async (_request, reply) =>
    page(
      reply,
      'Sign in',
      html`<h1>Sign in to Lethe</h1>
        <form data-action="login">
          <label for="email">E-mail address</label>
          <input id="email" name="email" type="email" autocomplete="username" required />
          <label for="password">Password</label>
          <input id="password" name="password" type="password" autocomplete="current-password" required />
          <button type="submit">Sign in</button>
          <p class="message" role="status"></p>
        </form>`,
    ),
  );

  app.get('/account', options, async (request, reply) => {
    const sessionId = sessionIdOf(request);
    const checked = sessionId === undefined ? undefined : await people.checkSession(sessionId);
    const csrf = checked && sessionId !== undefined ? await people.csrfTokenOf(sessionId) : undefined;
    if (!checked || !csrf) return reply.code(303).header('location', '/login').send();
    const rows: Html[] = [];
    for (const membership of await people.membershipsOf(checked.user.id)) {
      const workspace = await context.home.workspaces.byId(membership.workspace_id);
      if (workspace)
        rows.push(
          html`<tr>
            <td>${workspace.name}</td>
            <td>${membership.role}</td>
          </tr>`,
        );
    }
    return page(
      reply,
      'Your account',
      html`<h1>Your account</h1>
        <p>Signed in as <strong>${checked.user.email}</strong> (user ${checked.user.id}).</p>
        <h2>Workspaces</h2>
        ${
          rows.length === 0
            ? html`<p>You are not a member of any workspace yet.</p>`
            : html`<table>
                <thead>
                  <tr>
                    <th>Workspace</th>
                    <th>Role</th>
                  </tr>
                </thead>
                <tbody>
                  ${rows}
                </tbody>
              </table>`
        }
        <form data-action="logout">
          <button type="submit">Sign out</button>
          <p class="message"></p>
        </form>
        <h2>Change your password</h2>
        <form data-action="password">
          <label for="current">Current password</label>
          <input id="current" name="current" type="password" autocomplete="current-password" required />
          ${passwordFields(true)}
          <button type="submit">Change password</button>
          <p class="message" role="status"></p>
        </form>`,
      csrf.csrfToken,
    );
  });

  app.get('/invite', options, async (_request, reply) =>
    page(
      reply,
      'Accept an invite',
      html`<h1>Join a Lethe workspace</h1>
        <p>Choose a password for your new account — or, if you have one already, enter its password.</p>
        <form data-action="invite">
          ${passwordFields(false)}
          <button type="submit">Accept the invite</button>
          <p class="message" role="status"></p>
        </form>`,
    ),
  );

  app.get('/reset', options, async (_request, reply) =>
    page(
      reply,
      'Set a new password',
      html`<h1>Set a new password</h1>
        <form data-action="reset">
          ${passwordFields(true)}
          <button type="submit">Set the password</button>
          <p class="message" role="status"></p>
        </form>`,
    ),
  );
}
