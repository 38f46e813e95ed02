/**
 * Structured logs: one JSON object per line on stderr, so that stdout stays free for output.
 */
import winston from 'winston';

export type { Logger } from 'winston';

export function createLogger(level = 'info', defaultMeta: Record<string, unknown> = {}): winston.Logger {
  return winston.createLogger({
    level,
    defaultMeta,
    format: winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: false }), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug', 'verbose', 'silly'] })],
  });
}

/** A logger that drops everything: for library use and unit tests. */
export function silentLogger(): winston.Logger {
  return winston.createLogger({ silent: true });
}
