// Every call to the admin API goes through here, so the "not answering" banner, the
// signed-out state and the server's error message are handled once.
const listeners = { offline: () => {}, signedOut: () => {} };

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export function onApi(events) { Object.assign(listeners, events); }

async function errorOf(res) {
  const body = await res.json().catch(() => null);
  const err = body && body.error;
  const message = (err && (err.message || err)) || `the server answered ${res.status}`;
  const retry = Number(res.headers.get("Retry-After")) || 0;
  return new ApiError(res.status, (err && err.code) || "http_" + res.status, String(message), retry);
}

// `quiet401`: a 401 is the caller's business (the login form), not a sign-out.
export async function api(path, { method = "GET", body, quiet401 = false } = {}) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    listeners.offline(true);
    throw new ApiError(0, "unreachable", "fazt is not answering (" + e.message + ")");
  }
  listeners.offline(false);
  if (res.ok) return res.status === 204 ? null : res.json();
  const error = await errorOf(res);
  if (res.status === 401 && !quiet401) listeners.signedOut();
  throw error;
}

export const get = (path) => api(path);
export const post = (path, body) => api(path, { method: "POST", body: body || {} });
export const del = (path) => api(path, { method: "DELETE" });

// Uploads with XMLHttpRequest: fetch() reports no upload progress.
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onerror = () => { listeners.offline(true); reject(new ApiError(0, "unreachable", "fazt is not answering")); };
    xhr.onload = () => {
      listeners.offline(false);
      if (xhr.status >= 200 && xhr.status < 300) return resolve(xhr.response);
      const err = xhr.response && xhr.response.error;
      if (xhr.status === 401) listeners.signedOut();
      reject(new ApiError(xhr.status, err && err.code, (err && (err.message || err)) || "the server answered " + xhr.status));
    };
    xhr.send(form);
  });
}
