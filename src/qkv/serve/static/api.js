// The server's JSON API (docs/explorer.md), and the one line of the page that shows its errors.

import { $ } from "./dom.js";

export class ApiError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.status = status; // the HTTP status, 0 when the server was not reached
  }
}

async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(`the server cannot be reached (${path}): is qkv serve still running?`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`${path} answered HTTP ${response.status} without JSON`, response.status);
  }
  if (!response.ok) {
    throw new ApiError(body && body.error ? body.error : `${path} answered HTTP ${response.status}`, response.status);
  }
  return body;
}

function post(path, body, signal) {
  return request(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
}

const heads = new Map(); // "id/layer/head" → Float32Array, the few most recent
const HEADS_KEPT = 24;

export const api = {
  models: () => request("/api/models"),
  article: (lang, text) => {
    const params = new URLSearchParams({ lang });
    if (text) params.set("text", text);
    return request(`/api/article?${params}`);
  },
  nearest: (vector, k, exclude) => post("/api/nearest", { vector, k, exclude }),
  trace: (model, text) => post("/api/trace", { model, text }),
  qk: (id, layer, head) => request(`/api/trace/${encodeURIComponent(id)}/qk/${layer}/${head}`),
  exportUrl: (id, format) => `/api/trace/${encodeURIComponent(id)}/export?format=${format}`,
  training: (name) => request(`/api/runs/${encodeURIComponent(name)}/training`),

  /** One head's weights (T × S) as a Float32Array with .rows and .cols; head may be "mean". Cached. */
  async head(id, layer, head) {
    const key = `${id}/${layer}/${head}`;
    if (heads.has(key)) return heads.get(key);
    const body = await request(`/api/trace/${encodeURIComponent(id)}/head/${layer}/${head}`);
    const weights = base64ToFloat32(body.weights);
    weights.rows = body.shape[0];
    weights.cols = body.shape[1];
    heads.set(key, weights);
    if (heads.size > HEADS_KEPT) heads.delete(heads.keys().next().value);
    return weights;
  },

  /** POST /api/generate and call onEvent(object) for each NDJSON line as it arrives. */
  async generate(body, signal, onEvent) {
    let response;
    try {
      response = await fetch("/api/generate", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal,
      });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError("the server cannot be reached (/api/generate): is qkv serve still running?");
    }
    if (!response.ok) {
      let message = `/api/generate answered HTTP ${response.status}`;
      try {
        message = (await response.json()).error || message;
      } catch {
        // keep the status line
      }
      throw new ApiError(message, response.status);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        if (signal && signal.aborted) throw new DOMException("stopped", "AbortError");
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line) onEvent(JSON.parse(line));
      }
    }
    if (buffer.trim()) onEvent(JSON.parse(buffer));
  },
};

export function base64ToBytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Little-endian float32 from base64 (every browser this page runs in is little-endian). */
export function base64ToFloat32(text) {
  const bytes = base64ToBytes(text);
  return new Float32Array(bytes.buffer, 0, bytes.length / 4);
}

/** Show an error as the page's one line (an AbortError is the user's own Stop: not an error). */
export function showError(error) {
  if (error && error.name === "AbortError") return;
  const line = $("error");
  const message = error instanceof Error ? error.message : String(error);
  line.textContent = message.split("\n")[0];
  line.title = line.textContent;
  line.hidden = false;
}

export function clearError() {
  const line = $("error");
  line.hidden = true;
  line.textContent = "";
}
