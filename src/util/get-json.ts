/**
 * One GET of a JSON document over http or https, with a CA of our own and a timeout: what the
 * proxy needs to ask a controller's API. (Node's fetch cannot take a CA without undici's own
 * package; node:https can.)
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface GetJsonOptions {
  headers?: Record<string, string>;
  /** CA certificates to trust for https (default: the system's roots). */
  ca?: Buffer;
  timeoutMs: number;
}

/** Resolves with the status and the parsed body (undefined when it is not JSON); rejects on a network error or timeout. */
export function getJson(url: string, o: GetJsonOptions): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    };
    const options = { method: 'GET', headers: o.headers ?? {}, timeout: o.timeoutMs };
    const req = url.startsWith('https:') ? httpsRequest(url, { ...options, ca: o.ca }, onResponse) : httpRequest(url, options, onResponse);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
