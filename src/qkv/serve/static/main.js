// The page's entry: languages, the four views behind tabs, and the URL hash that holds every state.

import { api, showError } from "./api.js";
import { $ } from "./dom.js";
import { applyMessages, LANGUAGES, loadLanguage } from "./i18n.js";
import { getState, onExternalChange, setState } from "./state.js";
import { buildView } from "./build.js";
import { inspectView } from "./inspect.js";
import { generateView } from "./generate.js";
import { trainingView } from "./training.js";

const VIEWS = { build: buildView, inspect: inspectView, generate: generateView, training: trainingView };
const NAMES = Object.keys(VIEWS);

function viewOf(state) {
  return NAMES.includes(state.view) ? state.view : "build";
}

function languageOf(state) {
  if (LANGUAGES.includes(state.lang)) return state.lang;
  return (navigator.language || "en").toLowerCase().startsWith("es") ? "es" : "en";
}

function selectTab(name) {
  for (const tab of document.querySelectorAll("[role='tab']")) {
    const on = tab.dataset.view === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
  }
  for (const view of NAMES) $(`view-${view}`).hidden = view !== name;
}

async function show(state) {
  const name = viewOf(state);
  selectTab(name);
  try {
    await VIEWS[name].show(state);
  } catch (error) {
    showError(error);
  }
  document.body.dataset.ready = name;
}

function bindTabs() {
  const tabs = [...document.querySelectorAll("[role='tab']")];
  for (const tab of tabs) {
    tab.addEventListener("click", () => {
      setState({ view: tab.dataset.view }, { push: true });
      show(getState());
    });
    tab.addEventListener("keydown", (event) => {
      const moves = { ArrowRight: 1, ArrowLeft: -1 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      const next = tabs[(tabs.indexOf(tab) + moves[event.key] + tabs.length) % tabs.length];
      next.focus();
      next.click();
    });
  }
}

async function main() {
  const state = getState();
  const language = await loadLanguage(languageOf(state));
  $("lang").value = language;
  applyMessages();
  $("lang").addEventListener("change", async () => {
    setState({ lang: $("lang").value });
    await loadLanguage($("lang").value);
    applyMessages();
    await show(getState());
  });
  bindTabs();
  let models = { models: [], limits: { text_chars: 4000, tokens: 512, build_words: 32, generate_tokens: 256 } };
  try {
    models = await api.models();
  } catch (error) {
    showError(error);
  }
  buildView.init(models);
  inspectView.init(models);
  generateView.init(models);
  trainingView.init(models);
  onExternalChange(async (changed) => {
    if (LANGUAGES.includes(changed.lang) && changed.lang !== $("lang").value) {
      $("lang").value = await loadLanguage(changed.lang);
      applyMessages();
    }
    show(changed);
  });
  await show(getState());
}

main().catch(showError);
