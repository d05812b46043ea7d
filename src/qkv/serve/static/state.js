// Every state of the page lives in the URL hash (#view=inspect&model=minilm&text=...): any view is a permalink.

const listeners = new Set();
let applied = location.hash;

/** The hash as a plain object of strings. */
export function getState() {
  return Object.fromEntries(new URLSearchParams(location.hash.slice(1)));
}

/** Merge `patch` into the hash (null or "" removes a key). push: a new history entry (view changes). */
export function setState(patch, { push = false } = {}) {
  const params = new URLSearchParams(location.hash.slice(1));
  for (const [key, value] of Object.entries(patch)) {
    if (value === null || value === undefined || value === "") params.delete(key);
    else params.set(key, String(value));
  }
  const hash = "#" + params.toString();
  if (hash === location.hash) return;
  applied = hash;
  if (push) history.pushState(null, "", hash);
  else history.replaceState(null, "", hash);
}

/** Call fn(state) when the hash changes from outside (typing a URL, back and forward). */
export function onExternalChange(fn) {
  listeners.add(fn);
}

function changed() {
  if (location.hash === applied) return;
  applied = location.hash;
  const state = getState();
  for (const fn of listeners) fn(state);
}

window.addEventListener("hashchange", changed);
window.addEventListener("popstate", changed);
