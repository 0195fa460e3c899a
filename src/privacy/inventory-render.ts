/**
 * The inventory report as people read it: Markdown and HTML, from ./inventory.ts's data (JSON is
 * that data as is). Names and descriptions come from users, so every value is escaped by
 * construction: the `html` template escapes everything interpolated into it unless it is
 * already `Html` made by the same template; Markdown escapes its punctuation and HTML's.
 */
import { createHash } from 'node:crypto';
import type {
  ConnectionInventory,
  DataClassInventory,
  FlowInventory,
  Inventory,
  WorkspaceInventory,
} from './inventory.js';

export type InventoryFormat = 'md' | 'html' | 'json';
export const INVENTORY_FORMATS: readonly InventoryFormat[] = ['md', 'html', 'json'];

export const CONTENT_TYPES: Record<InventoryFormat, string> = {
  md: 'text/markdown; charset=utf-8',
  html: 'text/html; charset=utf-8',
  json: 'application/json; charset=utf-8',
};

/** An age for people: "12 d 3 h", "5 h 2 min", "40 s". */
export function formatAge(ms: number | null): string {
  if (ms === null) return '—';
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d${h > 0 ? ` ${h} h` : ''}`;
  if (h > 0) return `${h} h${m > 0 ? ` ${m} min` : ''}`;
  if (m > 0) return `${m} min`;
  return `${s} s`;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function statusLine(ws: WorkspaceInventory): string {
  if (ws.status === 'sealed') {
    return (
      `CLOSED — sealed in passive storage since ${ws.closedAt ?? '?'}: its data is unreadable ` +
      `(its key is ${ws.key.state}) and it is purged after ${ws.purgeAfter ?? '?'}`
    );
  }
  return 'active';
}

const TRIGGER_WORDS = {
  manual: 'manual',
  schedule: 'schedule',
  webhook: 'webhook (real time)',
  poll: 'poll (real time)',
} as const;

const CONFIDENTIAL_MEANS =
  'Confidential flows keep no record of the data they process: trigger payloads, step data, outputs, ' +
  'webhook bodies and error messages stay in memory and are gone when the run ends. Only the run summary ' +
  '(ids, status, timings, row counts, error class) is stored; a failed run goes to the dead-letter queue ' +
  'without its input, and a crash loses a queued run’s input.';

const STANDARD_MEANS =
  'Standard flows keep, besides the run summary, the trigger input while a run is queued, running or ' +
  'incomplete (for retries), per-step statistics with a few sample rows, and webhook bodies — each under ' +
  'its data class’s retention.';

// --- Markdown --------------------------------------------------------------------------------

/**
 * Markdown text, one line: `&`, `<` and `>` as entities (Markdown passes HTML through), and the
 * characters that start inline markup — \ ` * _ [ ] | ~ — backslash-escaped.
 */
export function mdEscape(value: unknown): string {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/[\\`*_[\]|~]/g, (c) => `\\${c}`)
    .replace(/\r?\n|\r/g, ' ');
}

function mdTable(header: string[], rows: string[][]): string {
  if (rows.length === 0) return '_none_\n';
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n') + '\n';
}

const e = mdEscape;
const list = (values: readonly string[]) => (values.length === 0 ? '—' : values.map(e).join(', '));

function mdClasses(classes: DataClassInventory[]): string {
  return mdTable(
    ['data class', 'what it holds', 'personal data', 'kept', 'records', 'oldest', 'age of oldest'],
    classes.map((c) => [
      `\`${c.name}\``,
      e(c.description),
      c.mayHoldPersonalData ? 'may hold' : 'no',
      e(c.retention.text),
      String(c.records),
      c.oldestAt ?? '—',
      formatAge(c.oldestAgeMs),
    ]),
  );
}

function mdFlows(flows: FlowInventory[]): string {
  return mdTable(
    ['flow', 'description', 'trigger', 'state', 'connections', 'what is stored about its runs'],
    flows.map((f) => [
      `${e(f.name)} (v${f.version})`,
      f.description ? e(f.description) : '—',
      e(`${TRIGGER_WORDS[f.trigger]}${f.triggerDetail ? `: ${f.triggerDetail}` : ''}`),
      f.state,
      list(f.connections),
      e(f.stored),
    ]),
  );
}

function mdConnections(connections: ConnectionInventory[]): string {
  return mdTable(
    ['connection', 'type', 'secret fields (encrypted)', 'settings in clear', 'used by', 'why it is stored'],
    connections.map((c) => [
      e(c.name),
      e(c.type),
      list(c.secretFields),
      list(c.settingsFields),
      c.usedBy.length === 0 ? '—' : c.usedBy.map((u) => `${e(u.flow)} (${u.trigger})`).join(', '),
      e(c.why),
    ]),
  );
}

function mdWorkspace(ws: WorkspaceInventory, inventory: Inventory): string {
  const out: string[] = [];
  out.push(`## Workspace ${e(ws.name)}\n`);
  out.push(
    [
      `- **Status:** ${e(statusLine(ws))}`,
      `- **Region:** ${e(ws.region)} — every record of this workspace is stored in this region’s store only`,
      `- **Legal hold:** ${ws.legalHold ? 'on — nothing is purged while it is on' : 'off'}`,
      `- **Log access by operators:** ${ws.logAccess === 'deny' ? 'denied — run details, payloads and webhook bodies are not stored' : 'allowed'}`,
      `- **Workspace key:** ${ws.key.state}, ${plural(ws.key.versions, 'version')}`,
      `- **Sub-processors:** none. **Telemetry:** none.`,
      '',
    ].join('\n'),
  );
  out.push('### What is stored\n');
  out.push(
    `Every stored record belongs to one data class. Retention periods are in ${inventory.deployment.retentionUnit}s; counts and ages are as of ${inventory.generatedAt}.\n`,
  );
  out.push(mdClasses(ws.dataClasses));
  out.push(`\n### Flows\n`);
  out.push(
    `${plural(ws.flows.confidential.length + ws.flows.standard.length, 'flow')}: ${ws.flows.confidential.length} confidential, ${ws.flows.standard.length} standard.\n`,
  );
  out.push(`\n#### Confidential flows\n\n${e(CONFIDENTIAL_MEANS)}\n\n${mdFlows(ws.flows.confidential)}`);
  out.push(`\n#### Standard flows\n\n${e(STANDARD_MEANS)}\n\n${mdFlows(ws.flows.standard)}`);
  out.push('\n### Triggers\n');
  out.push(
    mdTable(
      ['trigger', 'flows'],
      (Object.keys(ws.triggers) as (keyof typeof TRIGGER_WORDS)[]).map((kind) => [
        TRIGGER_WORDS[kind],
        String(ws.triggers[kind]),
      ]),
    ),
  );
  out.push('\n### Stored credentials\n');
  out.push(
    'Secret fields are encrypted with AES-256-GCM before they are stored and never shown again; only their names appear here. ' +
      'Scheduled, webhook and poll flows need their connections stored; manual flows could be given credentials at run time instead.\n\n',
  );
  out.push(mdConnections(ws.connections));
  out.push('\n### What is not stored\n\n');
  out.push(ws.notStored.map((item) => `- **${e(item.what)}** — ${e(item.how)}`).join('\n') + '\n');
  out.push('\n### Record of processing (GDPR Art. 30)\n\n');
  const record = ws.processingRecord;
  out.push(
    [
      `- **Purposes:** ${e(record.purposes.note)}. Flows: ${list(record.purposes.flows)}`,
      `- **Categories of personal data:**`,
      ...record.categoriesOfPersonalData.map(
        (c) => `  - \`${c.dataClass}\`: ${e(c.description)}${c.fields.length ? ` (${list(c.fields)})` : ''}`,
      ),
      `- **Categories of recipients:** ${e(record.recipientsNote)}`,
      `- **Transfers to third countries:** ${e(record.transfersNote)}`,
      `- **Time limits for erasure:**`,
      ...record.retentionPeriods.map((p) => `  - \`${p.dataClass}\`: ${e(p.period)}`),
      `- **Security measures:**`,
      ...record.securityMeasures.map((m) => `  - ${e(m)}`),
      `- **To be completed by the controller:** ${list(record.toBeCompletedByController)}`,
      '',
    ].join('\n'),
  );
  return out.join('');
}

export function renderMarkdown(inventory: Inventory): string {
  const head = [
    '# Lethe inventory report',
    '',
    `Generated from the live system at ${inventory.generatedAt} (store: ${inventory.deployment.store === 'sqlite' ? 'SQLite' : 'PostgreSQL'}).`,
    'It lists what this deployment stores, for how long, and what it does not store.',
    '',
    '- **Sub-processors:** none — no data is sent to, or processed by, any third party.',
    '- **Telemetry:** none — the process opens no outbound connection that a flow did not ask for.',
    `- **Encryption of credentials:** ${e(inventory.deployment.encryption)}.`,
    '',
  ].join('\n');
  const body =
    inventory.workspaces.length === 0
      ? '_No workspace._\n'
      : inventory.workspaces.map((ws) => mdWorkspace(ws, inventory)).join('\n');
  return `${head}\n${body}`;
}

// --- HTML ------------------------------------------------------------------------------------

/** Text that is HTML already (made by `html`). */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

export function escapeHtml(value: unknown): string {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function interpolate(value: unknown): string {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(interpolate).join('');
  return escapeHtml(value);
}

/** HTML with every interpolated value escaped (arrays joined; `Html` kept as is). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let text = strings[0]!;
  values.forEach((value, i) => {
    text += interpolate(value) + strings[i + 1]!;
  });
  return new Html(text);
}

const STYLE = [
  'body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1b1b1b}',
  'table{border-collapse:collapse;margin:.5rem 0 1rem;width:100%}',
  'th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}',
  'th{background:#f2f2f2}',
  '.closed{color:#a00;font-weight:600}',
  'code{font-size:.9em}',
].join('');

/** The Content-Security-Policy an HTML report is served with: no script, only its own style. */
export const INVENTORY_HTML_CSP =
  `default-src 'none'; style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'; ` +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function htmlTable(header: string[], rows: Html[][]): Html {
  if (rows.length === 0) return html`<p><em>none</em></p>`;
  return html`<table>
    <thead>
      <tr>
        ${header.map((h) => html`<th>${h}</th>`)}
      </tr>
    </thead>
    <tbody>
      ${rows.map(
        (row) =>
          html`<tr>
            ${row.map((cell) => html`<td>${cell}</td>`)}
          </tr>`,
      )}
    </tbody>
  </table>`;
}

const cell = (value: unknown) => html`${value}`;
const joined = (values: readonly string[]) => cell(values.length === 0 ? '—' : values.join(', '));

function htmlFlows(flows: FlowInventory[]): Html {
  return htmlTable(
    ['flow', 'description', 'trigger', 'state', 'connections', 'what is stored about its runs'],
    flows.map((f) => [
      html`${f.name} (v${f.version})`,
      cell(f.description ?? '—'),
      cell(`${TRIGGER_WORDS[f.trigger]}${f.triggerDetail ? `: ${f.triggerDetail}` : ''}`),
      cell(f.state),
      joined(f.connections),
      cell(f.stored),
    ]),
  );
}

function htmlWorkspace(ws: WorkspaceInventory, inventory: Inventory): Html {
  const record = ws.processingRecord;
  return html`<section>
    <h2>Workspace ${ws.name}</h2>
    <ul>
      <li>
        <strong>Status:</strong>
        ${ws.status === 'sealed' ? html`<span class="closed">${statusLine(ws)}</span>` : 'active'}
      </li>
      <li>
        <strong>Region:</strong> ${ws.region} — every record of this workspace is stored in this region’s
        store only
      </li>
      <li><strong>Legal hold:</strong> ${ws.legalHold ? 'on — nothing is purged while it is on' : 'off'}</li>
      <li>
        <strong>Log access by operators:</strong>
        ${ws.logAccess === 'deny' ? 'denied — run details, payloads and webhook bodies are not stored' : 'allowed'}
      </li>
      <li><strong>Workspace key:</strong> ${ws.key.state}, ${plural(ws.key.versions, 'version')}</li>
      <li><strong>Sub-processors:</strong> none. <strong>Telemetry:</strong> none.</li>
    </ul>
    <h3>What is stored</h3>
    <p>
      Every stored record belongs to one data class. Retention periods are in
      ${inventory.deployment.retentionUnit}s; counts and ages are as of ${inventory.generatedAt}.
    </p>
    ${htmlTable(
      ['data class', 'what it holds', 'personal data', 'kept', 'records', 'oldest', 'age of oldest'],
      ws.dataClasses.map((c) => [
        html`<code>${c.name}</code>`,
        cell(c.description),
        cell(c.mayHoldPersonalData ? 'may hold' : 'no'),
        cell(c.retention.text),
        cell(c.records),
        cell(c.oldestAt ?? '—'),
        cell(formatAge(c.oldestAgeMs)),
      ]),
    )}
    <h3>Flows</h3>
    <p>
      ${plural(ws.flows.confidential.length + ws.flows.standard.length, 'flow')}:
      ${ws.flows.confidential.length} confidential, ${ws.flows.standard.length} standard.
    </p>
    <h4>Confidential flows</h4>
    <p>${CONFIDENTIAL_MEANS}</p>
    ${htmlFlows(ws.flows.confidential)}
    <h4>Standard flows</h4>
    <p>${STANDARD_MEANS}</p>
    ${htmlFlows(ws.flows.standard)}
    <h3>Triggers</h3>
    ${htmlTable(
      ['trigger', 'flows'],
      (Object.keys(ws.triggers) as (keyof typeof TRIGGER_WORDS)[]).map((kind) => [
        cell(TRIGGER_WORDS[kind]),
        cell(ws.triggers[kind]),
      ]),
    )}
    <h3>Stored credentials</h3>
    <p>
      Secret fields are encrypted with AES-256-GCM before they are stored and never shown again; only their
      names appear here. Scheduled, webhook and poll flows need their connections stored; manual flows could
      be given credentials at run time instead.
    </p>
    ${htmlTable(
      ['connection', 'type', 'secret fields (encrypted)', 'settings in clear', 'used by', 'why it is stored'],
      ws.connections.map((c) => [
        cell(c.name),
        cell(c.type),
        joined(c.secretFields),
        joined(c.settingsFields),
        joined(c.usedBy.map((u) => `${u.flow} (${u.trigger})`)),
        cell(c.why),
      ]),
    )}
    <h3>What is not stored</h3>
    <ul>
      ${ws.notStored.map((item) => html`<li><strong>${item.what}</strong> — ${item.how}</li>`)}
    </ul>
    <h3>Record of processing (GDPR Art. 30)</h3>
    <dl>
      <dt>Purposes</dt>
      <dd>
        ${record.purposes.note}. Flows:
        ${record.purposes.flows.length ? record.purposes.flows.join(', ') : '—'}
      </dd>
      <dt>Categories of personal data</dt>
      <dd>
        <ul>
          ${record.categoriesOfPersonalData.map(
            (c) =>
              html`<li>
                <code>${c.dataClass}</code>:
                ${c.description}${c.fields.length ? ` (${c.fields.join(', ')})` : ''}
              </li>`,
          )}
        </ul>
      </dd>
      <dt>Categories of recipients</dt>
      <dd>${record.recipientsNote}</dd>
      <dt>Transfers to third countries</dt>
      <dd>${record.transfersNote}</dd>
      <dt>Time limits for erasure</dt>
      <dd>
        <ul>
          ${record.retentionPeriods.map((p) => html`<li><code>${p.dataClass}</code>: ${p.period}</li>`)}
        </ul>
      </dd>
      <dt>Security measures</dt>
      <dd>
        <ul>
          ${record.securityMeasures.map((m) => html`<li>${m}</li>`)}
        </ul>
      </dd>
      <dt>To be completed by the controller</dt>
      <dd>${record.toBeCompletedByController.join('; ')}</dd>
    </dl>
  </section>`;
}

export function renderHtml(inventory: Inventory): string {
  const page = html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="no-referrer" />
        <title>Lethe inventory report</title>
        <style>
          ${new Html(STYLE)}
        </style>
      </head>
      <body>
        <h1>Lethe inventory report</h1>
        <p>
          Generated from the live system at ${inventory.generatedAt} (store:
          ${inventory.deployment.store === 'sqlite' ? 'SQLite' : 'PostgreSQL'}). It lists what this deployment
          stores, for how long, and what it does not store.
        </p>
        <ul>
          <li>
            <strong>Sub-processors:</strong> none — no data is sent to, or processed by, any third party.
          </li>
          <li>
            <strong>Telemetry:</strong> none — the process opens no outbound connection that a flow did not
            ask for.
          </li>
          <li><strong>Encryption of credentials:</strong> ${inventory.deployment.encryption}.</li>
        </ul>
        ${inventory.workspaces.length === 0 ? html`<p><em>No workspace.</em></p>` : inventory.workspaces.map((ws) => htmlWorkspace(ws, inventory))}
      </body>
    </html> `;
  return page.text;
}

export function renderInventory(inventory: Inventory, format: InventoryFormat): string {
  if (format === 'md') return renderMarkdown(inventory);
  if (format === 'html') return renderHtml(inventory);
  return `${JSON.stringify(inventory, null, 2)}\n`;
}
