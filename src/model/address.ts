/**
 * "host:port", the one way an address is written everywhere in cfgserver (instances, listen
 * options, registrations): the one parser of it.
 */
import { ValidationError } from './errors.js';

export interface HostPort {
  host: string;
  port: number;
}

/** Splits at the last colon; null unless there is a host before it and only digits after it. */
export function parseHostPort(text: string): HostPort | null {
  const i = text.lastIndexOf(':');
  const port = text.slice(i + 1);
  if (i <= 0 || !/^\d+$/.test(port)) return null;
  return { host: text.slice(0, i), port: Number(port) };
}

/** The host and port of an address; one that is not HOST:PORT is a ValidationError. */
export function splitAddress(address: string): HostPort {
  const parsed = parseHostPort(address);
  if (!parsed) throw new ValidationError(`${address} is not HOST:PORT`);
  return parsed;
}
