/**
 * Prometheus metrics of a proxy. The hot path only bumps plain numbers; they are copied into the
 * registry when /metrics is scraped.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { LatencyHistogram } from './latency-histogram.js';

export class ProxyCounters {
  commands = 0;
  errors = 0;
  connectionsOpened = 0;
  connections = 0;
  epoch = 0;
  invalidRoutes = 0;
  /** Clients turned away at --max-clients. */
  rejectedConnections = 0;
  /** Clients closed for going past their output bound. */
  outputLimitClosed = 0;
  /** Clients closed by --idle-timeout. */
  idleClosed = 0;
  /** Failed accepts (EMFILE, ENFILE, ...). */
  acceptErrors = 0;
  /** Keys of moving slots this proxy moved before running a command on them. */
  keysMoved = 0;
}

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly counters = new ProxyCounters();
  readonly backendLatency: LatencyHistogram;

  constructor() {
    const c = this.counters;
    const reg = [this.registry];
    const counterFrom = (name: string, help: string, read: () => number) => {
      let reported = 0;
      return new Counter({
        name,
        help,
        registers: reg,
        collect() {
          const now = read();
          if (now > reported) this.inc(now - reported);
          reported = now;
        },
      });
    };
    counterFrom('cfgserver_proxy_commands_total', 'Commands received from clients', () => c.commands);
    counterFrom('cfgserver_proxy_error_replies_total', 'Error replies sent to clients', () => c.errors);
    counterFrom('cfgserver_proxy_connections_total', 'Client connections accepted', () => c.connectionsOpened);
    counterFrom('cfgserver_proxy_invalid_routes_total', 'Route values ignored (malformed or older epoch)', () => c.invalidRoutes);
    counterFrom('cfgserver_proxy_rejected_connections_total', 'Clients refused because --max-clients were connected', () => c.rejectedConnections);
    counterFrom('cfgserver_proxy_output_limit_closed_total', 'Clients closed for letting replies pile up past their output limit', () => c.outputLimitClosed);
    counterFrom('cfgserver_proxy_idle_closed_total', 'Clients closed by --idle-timeout', () => c.idleClosed);
    counterFrom('cfgserver_proxy_migration_keys_moved_total', 'Keys of migrating slots moved by this proxy on access (MIGRATE before the command)', () => c.keysMoved);
    counterFrom('cfgserver_proxy_accept_errors_total', 'Connections the listening socket failed to accept (EMFILE, ENFILE, ...)', () => c.acceptErrors);
    new Gauge({ name: 'cfgserver_proxy_connections', help: 'Open client connections', registers: reg, collect() { this.set(c.connections); } });
    // Summed across --workers processes like the rest, except the epoch: the oldest one any
    // worker still serves is the one that matters while a route change spreads.
    new Gauge({ name: 'cfgserver_proxy_route_epoch', help: 'Epoch of the route in use', aggregator: 'min', registers: reg, collect() { this.set(c.epoch); } });
    this.backendLatency = new LatencyHistogram(
      'cfgserver_proxy_backend_latency_seconds',
      'Round trip to the Redis instances (one request in 16 is sampled)',
      [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
      this.registry,
    );
    collectDefaultMetrics({ register: this.registry, prefix: 'cfgserver_proxy_' });
  }
}
