/** The version of cfgserver, as reported by controllers and proxies. */
export const VERSION = '0.1.0';
