// The page's words in English and Spanish (i18n/en.json, i18n/es.json: the same keys; shared with the
// self-contained pages, so they live in qkv/web/static/ and are served under /static/ with this page's files).

import { format } from "./words.js";

export const LANGUAGES = ["en", "es"];
let messages = {};
let language = "en";

export async function loadLanguage(lang) {
  const chosen = LANGUAGES.includes(lang) ? lang : "en";
  const response = await fetch(`/static/i18n/${chosen}.json`);
  if (!response.ok) throw new Error(`the ${chosen} messages could not be read (HTTP ${response.status})`);
  messages = await response.json();
  language = chosen;
  document.documentElement.lang = chosen;
  return chosen;
}

export function currentLanguage() {
  return language;
}

/** The message `key` with {name} replaced by vars.name. An unknown key shows itself, never undefined. */
export function t(key, vars = {}) {
  const template = messages[key];
  return template === undefined ? key : format(template, vars);
}

/** Fill every [data-i18n] (text), [data-i18n-label] (aria-label) and [data-i18n-placeholder] under root. */
export function applyMessages(root = document) {
  for (const element of root.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  for (const element of root.querySelectorAll("[data-i18n-label]")) {
    element.setAttribute("aria-label", t(element.dataset.i18nLabel));
  }
  for (const element of root.querySelectorAll("[data-i18n-placeholder]")) {
    element.setAttribute("placeholder", t(element.dataset.i18nPlaceholder));
  }
  document.title = t("app.document_title");
}
