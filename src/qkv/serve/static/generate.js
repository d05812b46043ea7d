// Generate: a causal model writes token by token, streamed as NDJSON over fetch; each new token shows where it
// looked (its attention row per head in one layer), the sinks, and the most likely next tokens. Stop aborts the
// request; the scrubber replays.

import { api, clearError, showError } from "./api.js";
import { $, clear, fmt, h } from "./dom.js";
import { drawWeights } from "./heatmap.js";
import { t } from "./i18n.js";
import { getState, setState } from "./state.js";

const FIELDS = [
  ["generate-tokens", "gn", 40],
  ["generate-temperature", "temp", 0],
  ["generate-topk", "topk", 0],
  ["generate-seed", "seed", 0],
  ["generate-layer", "glayer", -1],
];

let controller = null;
let run = null; // {start, tokens: [...], layer}
let replay = null;

export const generateView = {
  init(models) {
    const select = clear($("generate-model"));
    const causal = models.models.filter((m) => m.causal && m.available);
    for (const model of causal) select.append(h("option", { value: model.name }, model.name));
    if (!causal.length) $("generate-status").textContent = t("generate.no_model");
    $("generate-prompt").maxLength = models.limits.text_chars;
    $("generate-tokens").max = models.limits.generate_tokens;
    $("generate-form").addEventListener("submit", (event) => {
      event.preventDefault();
      start();
    });
    $("generate-stop").addEventListener("click", () => controller && controller.abort());
    $("generate-scrub").addEventListener("input", () => {
      stopReplay();
      showToken(Number($("generate-scrub").value));
    });
    $("generate-replay").addEventListener("click", () => (replay ? stopReplay() : startReplay()));
    const save = () => {
      const patch = { gmodel: select.value, prompt: $("generate-prompt").value };
      for (const [id, key] of FIELDS) patch[key] = $(id).value;
      setState(patch);
    };
    for (const id of ["generate-model", "generate-prompt", ...FIELDS.map((f) => f[0])]) $(id).addEventListener("change", save);
  },

  show(state) {
    if (state.gmodel) $("generate-model").value = state.gmodel;
    $("generate-prompt").value = state.prompt ?? t("generate.default_prompt");
    for (const [id, key, fallback] of FIELDS) $(id).value = state[key] ?? fallback;
  },
};

async function start() {
  if (controller) controller.abort();
  stopReplay();
  const body = {
    model: $("generate-model").value,
    prompt: $("generate-prompt").value,
    tokens: Number($("generate-tokens").value),
    temperature: Number($("generate-temperature").value),
    top_k: Number($("generate-topk").value),
    seed: Number($("generate-seed").value),
    layer: Number($("generate-layer").value),
  };
  const patch = { gmodel: body.model, prompt: body.prompt, at: null };
  for (const [id, key] of FIELDS) patch[key] = $(id).value;
  setState(patch);
  controller = new AbortController();
  const mine = controller;
  run = { start: null, tokens: [] };
  clear($("generate-text"));
  $("generate-result").hidden = true;
  $("generate-go").disabled = true;
  $("generate-stop").disabled = false;
  $("generate-status").textContent = t("generate.loading");
  try {
    await api.generate(body, mine.signal, (event) => receive(event));
    clearError();
  } catch (error) {
    if (error.name === "AbortError") $("generate-status").textContent = t("generate.stopped", { count: run.tokens.length });
    else {
      $("generate-status").textContent = "";
      showError(error);
    }
  } finally {
    if (controller === mine) controller = null;
    $("generate-go").disabled = false;
    $("generate-stop").disabled = true;
  }
}

function receive(event) {
  if (event.type === "start") {
    run.start = event;
    const text = $("generate-text");
    for (const token of event.prompt_tokens) text.append(h("span", { class: "prompt" }, token));
    $("generate-result").hidden = false;
    $("generate-status").textContent = t("generate.running", { layer: event.layer, heads: event.heads });
  } else if (event.type === "token") {
    run.tokens.push(event);
    const index = run.tokens.length - 1;
    const span = h("span", { class: "new", "data-index": index, onclick: () => showToken(index) }, event.text);
    $("generate-text").append(span);
    const scrub = $("generate-scrub");
    const following = index === 0 || Number(scrub.value) === Number(scrub.max); // the newest is on screen
    scrub.max = String(index);
    if (following) showToken(index);
    $("generate-status").textContent = t("generate.progress", { count: run.tokens.length });
  } else if (event.type === "done") {
    $("generate-status").textContent = t(event.reason === "stop" ? "generate.done_stop" : "generate.done", {
      count: run.tokens.length,
    });
  } else if (event.type === "error") {
    throw new Error(event.error);
  }
}

/** Show token `index`: its row per head, the earlier tokens tinted by its mean weight, sinks, the top-5. */
function showToken(index) {
  if (!run || !run.tokens[index]) return;
  const token = run.tokens[index];
  const scrub = $("generate-scrub");
  scrub.value = String(index);
  $("generate-scrub-value").textContent = `${index + 1} / ${run.tokens.length}`;
  setState({ at: index });
  const H = token.weights.length;
  const S = token.weights[0].length;
  const flat = new Float32Array(H * S);
  token.weights.forEach((row, head) => flat.set(row, head * S));
  const canvas = $("generate-rows");
  drawWeights(canvas, flat, H, S);
  canvas.setAttribute("aria-label", t("generate.rows_label", { token: token.text, heads: H, keys: S }));
  $("generate-token-title").textContent = t("generate.token_title", { token: JSON.stringify(token.text), index: index + 1 });

  // The sequence so far, tinted by this token's mean weight over the heads; sinks marked.
  const mean = new Float32Array(S);
  for (let head = 0; head < H; head++) for (let k = 0; k < S; k++) mean[k] += token.weights[head][k] / H;
  const spans = [...$("generate-text").children];
  const offset = index + run.start.prompt_tokens.length + 1 - S; // the context may have been cropped
  const largest = Math.max(...mean);
  spans.forEach((span, i) => {
    const k = i - offset;
    span.classList.toggle("current", i === index + run.start.prompt_tokens.length);
    span.classList.toggle("sink", k >= 0 && k < S && Boolean(token.sinks[k]));
    const weight = k >= 0 && k < S && i <= index + run.start.prompt_tokens.length ? mean[k] / (largest || 1) : 0;
    span.style.backgroundColor = weight > 0.02 ? `rgba(253, 174, 97, ${(0.15 + 0.85 * weight).toFixed(3)})` : "";
    span.style.color = weight > 0.02 ? "#000" : "";
    span.title = k >= 0 && k < S ? `${fmt(mean[k])}` : "";
  });

  // The keys under the rows, when there are few enough to read.
  const labels = spans.map((span) => span.textContent);
  const under = clear($("generate-row-labels"));
  under.hidden = S > 64;
  if (S <= 64) {
    under.style.gridTemplateColumns = `repeat(${S}, 1fr)`;
    for (let k = 0; k < S; k++) {
      const label = labels[k + offset] ?? "";
      under.append(h("span", { class: token.sinks[k] ? "sink" : null }, (token.sinks[k] ? "⚓" : "") + label.trim() || "␣"));
    }
  }

  // Per head: the sinks' share and its first choice.
  const list = clear($("generate-heads"));
  token.weights.forEach((row, head) => {
    let sink = 0;
    row.forEach((w, k) => (sink += token.sinks[k] ? w : 0));
    let best = 0;
    row.forEach((w, k) => (best = w > row[best] ? k : best));
    list.append(
      h(
        "li",
        {},
        t("generate.head_line", {
          head,
          word: JSON.stringify(labels[best + offset] ?? "?"),
          weight: fmt(row[best], 2),
          sink: fmt(sink, 2),
        }),
      ),
    );
  });

  const bars = clear($("generate-top"));
  for (const choice of token.top) {
    const bar = h("span", { class: "bar" });
    bar.style.width = `${(choice.p * 100).toFixed(1)}%`;
    bars.append(h("li", {}, h("span", {}, JSON.stringify(choice.text)), h("span", {}, bar), h("span", {}, fmt(choice.p))));
  }
}

function startReplay() {
  if (!run || !run.tokens.length) return;
  let index = 0;
  $("generate-replay").textContent = t("generate.pause");
  showToken(0);
  replay = setInterval(() => {
    index += 1;
    if (index >= run.tokens.length) return stopReplay();
    showToken(index);
  }, 150);
}

function stopReplay() {
  if (replay) clearInterval(replay);
  replay = null;
  $("generate-replay").textContent = t("generate.replay");
}
