// Talking to the controller's HTTP API from the page: JSON in and out, the operator's token on
// every request once given. The token lives in sessionStorage only: gone when the tab closes,
// never written to disk by the page, never sent anywhere but this origin.

const TOKEN_KEY = 'cfgserver.apiToken';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An answer other than 2xx: the API's {"error": {code, message}}, with the HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = data && data.error ? data.error : { code: `HTTP_${res.status}`, message: text || res.statusText };
    throw new ApiError(res.status, err.code, err.message);
  }
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body = {}) => api('POST', path, body);

/** A path segment from a name: cluster names are checked by the API, but never trusted here. */
export const seg = (s) => encodeURIComponent(String(s));
