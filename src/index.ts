/**
 * The library surface of cfgserver for Node programs: follow a route, map keys to slots.
 */
export { RouteWatcher, type RouteWatcherOptions, type RouteWatcherEvents } from './store/route-watcher.js';
export { keySlot, crc16 } from './model/slot.js';
export { routeSchema, type Route, type Shard } from './model/schemas.js';
export { slotOwners } from './model/route.js';
export { Keys, DEFAULT_PREFIX } from './store/keys.js';
export * from './model/errors.js';
// A RouteWatcher on a secured etcd: `new RouteWatcher({ cluster, etcd: { endpoints, security:
// loadEtcdSecurity({ ca, cert, key, user, passwordFile }) } })` (docs/security.md).
export { loadEtcdSecurity, type EtcdSecurity, type EtcdSecuritySettings } from './store/etcd-security.js';
export type { EtcdOptions } from './store/etcd.js';
