/**
 * Prometheus metrics (prom-client), in a registry of the server's own: runs by status, queue
 * depth, webhook intake, run and step durations, and the process's own figures. Labels are
 * statuses and command names only — never ids with values, never payloads.
 */
import client from 'prom-client';
import type { RunResult } from '../engine/run.js';

export class Metrics {
  readonly registry = new client.Registry();
  readonly runs: client.Counter<'status'>;
  readonly webhooks: client.Counter<'status'>;
  readonly runDuration: client.Histogram;
  readonly stepDuration: client.Histogram<'command'>;
  /** Records deleted by retention (and other purges), by data class. */
  readonly purgedRecords: client.Counter<'data_class'>;
  /** How long a purge pass took (all tables, the space given back included). */
  readonly purgeDuration: client.Histogram;

  constructor(
    queueDepth: () => Promise<number>,
    running: () => number,
    commits: () => { commits: number; items: number },
  ) {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'lethe_' });
    this.runs = new client.Counter({
      name: 'lethe_runs_total',
      help: 'Runs that ended, by status',
      labelNames: ['status'],
      registers: [this.registry],
    });
    this.webhooks = new client.Counter({
      name: 'lethe_webhooks_total',
      help: 'Webhook requests received, by HTTP status answered',
      labelNames: ['status'],
      registers: [this.registry],
    });
    this.runDuration = new client.Histogram({
      name: 'lethe_run_duration_seconds',
      help: 'Time from a run’s start to its end',
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300],
      registers: [this.registry],
    });
    this.stepDuration = new client.Histogram({
      name: 'lethe_step_duration_seconds',
      help: 'Time a step took, by command',
      labelNames: ['command'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers: [this.registry],
    });
    this.purgedRecords = new client.Counter({
      name: 'lethe_purged_records_total',
      help: 'Records deleted by the retention engine, by data class',
      labelNames: ['data_class'],
      registers: [this.registry],
    });
    this.purgeDuration = new client.Histogram({
      name: 'lethe_purge_duration_seconds',
      help: 'Time a retention purge pass took',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800],
      registers: [this.registry],
    });
    new client.Gauge({
      name: 'lethe_queue_depth',
      help: 'Runs queued and not yet started',
      registers: [this.registry],
      async collect() {
        this.set(await queueDepth());
      },
    });
    new client.Gauge({
      name: 'lethe_store_commits',
      help: 'Transactions committed by group commit since start',
      registers: [this.registry],
      collect() {
        this.set(commits().commits);
      },
    });
    new client.Gauge({
      name: 'lethe_store_commit_items',
      help: 'Writes committed by group commit since start (items ÷ commits = batch size)',
      registers: [this.registry],
      collect() {
        this.set(commits().items);
      },
    });
    new client.Gauge({
      name: 'lethe_runs_running',
      help: 'Runs executing now',
      registers: [this.registry],
      collect() {
        this.set(running());
      },
    });
  }

  runFinished(status: string, result: RunResult | undefined): void {
    this.runs.inc({ status });
    if (!result) return;
    this.runDuration.observe(result.durationMs / 1000);
    for (const step of result.steps) {
      if (step.status === 'succeeded')
        this.stepDuration.observe({ command: step.command }, step.durationMs / 1000);
    }
  }
}
