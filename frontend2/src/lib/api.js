/**
 * JSON over fetch with the portal's session: same-origin cookies, Django's CSRF header on writes,
 * and errors that carry the server's message so widgets can show it instead of going blank.
 */
export class ApiError extends Error {
  constructor(message, { status = 0, body = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
}

export function csrfToken(doc = globalThis.document) {
  const match = doc?.cookie?.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function messageFrom(body, status) {
  if (body && typeof body === "object") {
    if (typeof body.detail === "string") return body.detail;
    const [field, problem] = Object.entries(body)[0] || [];
    if (field) return `${field}: ${Array.isArray(problem) ? problem.join(" ") : String(problem)}`;
  }
  if (status === 401 || status === 403) return "You are not allowed to see this (signed out?).";
  if (status >= 500) return `The server failed (HTTP ${status}).`;
  return `Request failed (HTTP ${status}).`;
}

export async function requestJson(path, { method = "GET", body, signal, fetchImpl = globalThis.fetch } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", signal };
  if (method !== "GET") {
    headers["X-CSRFToken"] = csrfToken();
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body ?? {});
  }
  let response;
  try {
    response = await fetchImpl(path, init);
  } catch (err) {
    if (err?.name === "AbortError") throw err;
    throw new ApiError("The server cannot be reached.", { status: 0 });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) throw new ApiError(messageFrom(data, response.status), { status: response.status, body: data });
  return data;
}

export const getJson = (path, options) => requestJson(path, { ...options, method: "GET" });
export const postJson = (path, body, options) => requestJson(path, { ...options, method: "POST", body });

/** ws:// or wss:// URL for a path on this origin (Channels shares the page's session cookie). */
export function wsUrl(path, loc = globalThis.location) {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}${path.startsWith("/") ? path : `/${path}`}`;
}
