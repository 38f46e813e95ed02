/**
 * The twemproxy agent process: start, then on SIGTERM/SIGINT stop nutcracker (when it is the
 * agent's child) and leave the registry at once (the lease is revoked).
 */
import { errorMessage } from '../model/errors.js';
import { TwemproxyAgent, type AgentOptions } from './agent.js';

export async function runTwemproxyAgent(options: AgentOptions): Promise<TwemproxyAgent> {
  const agent = new TwemproxyAgent(options);
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    options.log.info('twemproxy agent shutting down', { signal });
    await agent.stop().catch((err) => options.log.error('error while stopping', { error: errorMessage(err) }));
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  try {
    await agent.start();
  } catch (err) {
    await agent.stop().catch(() => undefined);
    throw err;
  }
  return agent;
}
