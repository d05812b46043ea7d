// Build: the article's ladder, live, on its sentence or the reader's own, from MiniLM's vectors (/api/article).
// Every number is computed here from the vectors (build_math.js); the tests compare them with Python's.
// Steps 2–5 read the head of MiniLM's first layer that `qkv tour` reads (article_head: where the focus word
// attends to the other most beyond the other way round), or, ticked, the article's literal vectors (raw
// embeddings through the full width), which show the honest failure. Heads and Positions run the first layer
// as the model does (first_layer: normalised embeddings, projected values).

import { api, clearError, showError } from "./api.js";
import { $, clear, debounce, fmt, h, sci } from "./dom.js";
import { drawWeights } from "./heatmap.js";
import { arcs, matrixTable } from "./figures.js";
import { t, currentLanguage } from "./i18n.js";
import * as m from "./build_math.js";
import { getState, setState } from "./state.js";

const STEPS = ["mix", "keys", "queries", "softmax", "scale", "heads", "positions"];
const articles = new Map(); // "lang|text" → the API's answer

let data = null; // the article in the words' own order
let shuffled = null; // the same words in state.order, with their own positions (step "positions")
let loadedKey = null;

export const buildView = {
  init() {
    $("build-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const text = $("build-text").value.trim();
      setState({ btext: text, focus: null, other: null, order: null });
      this.show(getState());
    });
    $("build-reset").addEventListener("click", () => {
      $("build-text").value = "";
      setState({ btext: null, focus: null, other: null, order: null });
      this.show(getState());
    });
    $("build-prev").addEventListener("click", () => this.go(-1));
    $("build-next").addEventListener("click", () => this.go(1));
  },

  go(delta) {
    const index = STEPS.indexOf(stepOf(getState()));
    const next = STEPS[Math.max(0, Math.min(STEPS.length - 1, index + delta))];
    setState({ step: next });
    renderStep(getState());
    $("build-steps").querySelector(`[data-step="${next}"]`).focus();
  },

  async show(state) {
    $("build-text").value = state.btext || "";
    const key = `${currentLanguage()}|${state.btext || ""}|${state.order || ""}`;
    if (key !== loadedKey) {
      $("build-status").textContent = t("build.loading");
      try {
        data = await article(state.btext || "");
        shuffled = null;
        const order = parseOrder(state.order, data.words.length);
        if (order) shuffled = await shuffledArticle(order);
        loadedKey = key;
        clearError();
        publishNumbers();
      } catch (error) {
        showError(error);
        $("build-status").textContent = "";
        return;
      }
      $("build-status").textContent = t("build.loaded", { count: data.words.length, width: data.width });
      if (!state.btext) $("build-text").value = data.sentence;
    }
    renderSteps(state);
    renderStep(state);
  },
};

async function article(text) {
  const key = `${currentLanguage()}|${text}`;
  if (!articles.has(key)) articles.set(key, await api.article(currentLanguage(), text));
  return articles.get(key);
}

function parseOrder(text, count) {
  if (!text) return null;
  const order = text.split(".").map(Number);
  const valid =
    order.length === count && order.every((i) => Number.isInteger(i) && i >= 0 && i < count) && new Set(order).size === count;
  return valid ? order : null;
}

async function shuffledArticle(order) {
  const words = order.map((i) => data.words[i]);
  const answer = await article(words.join(" "));
  if (answer.words.join(" ") !== words.join(" ")) throw new Error(t("build.shuffle_mismatch"));
  return { ...answer, order };
}

function stepOf(state) {
  return STEPS.includes(state.step) ? state.step : "mix";
}

function wordIndex(value, fallbackIndex) {
  const index = Number(value);
  if (value !== undefined && Number.isInteger(index) && index >= 0 && index < data.words.length) return index;
  return fallbackIndex;
}

/** The unit vector along each row. */
function unitRows(matrix) {
  return matrix.map((row) => {
    const length = m.norm(row);
    return row.map((x) => x / length);
  });
}

/**
 * The vectors steps 2–5 read. By default one head of MiniLM's first layer, the tour's: its queries, its keys
 * (unit for Part 2, at their own lengths from Part 3 on) and the words' raw embeddings as values. With raw=1,
 * the article's literal vectors: raw embeddings, unit keys and queries through all 384 numbers.
 */
function source(article, state) {
  if (state.raw === "1") {
    const { queries, keys, values, width } = article;
    return { raw: true, queries, keys, unitKeys: keys, values, width };
  }
  const { head, width } = article.article_head;
  const slice = (matrix) => m.columns(matrix, head * width, (head + 1) * width);
  const keys = slice(article.first_layer.keys);
  return { raw: false, head, queries: slice(article.first_layer.queries), keys, unitKeys: unitRows(keys), values: article.values, width };
}

/** Softmax(Q Kᵀ / √K) @ V: Part 3's final link on a source. */
function finalLink(src) {
  return m.attention({ queries: src.queries, keys: src.keys, values: src.values, normalise: "softmax", scaled: true });
}

/** MiniLM's first layer, its heads side by side, without or with positions. */
function layerRun(article, withPositions) {
  const layer = withPositions ? article.first_layer.with_positions : article.first_layer;
  return m.attention({ queries: layer.queries, keys: layer.keys, values: layer.values, heads: article.heads });
}

/** The numbers the page shows, for the tests: words in order, no positions. */
function publishNumbers() {
  const { queries, keys, values } = data;
  const width = queries[0].length;
  const scores = m.timesTransposed(queries, keys);
  const scaled = m.attention({ queries, keys, values, normalise: "softmax", scaled: true });
  const head = source(data, {});
  const headScores = m.timesTransposed(head.queries, head.keys);
  const headLink = finalLink(head);
  const layer = layerRun(data, false);
  window.qkvExplorer = window.qkvExplorer || {};
  window.qkvExplorer.build = {
    words: data.words,
    part2_relevance: m.timesTransposed(keys, keys),
    part3_scores: scores,
    softmax_weights: m.softmax(scores),
    scaled_softmax_weights: m.softmax(m.scale(scores, 1 / Math.sqrt(width))),
    output: scaled.output,
    head: head.head,
    head_relevance: m.timesTransposed(head.unitKeys, head.unitKeys),
    head_scores: headScores,
    head_weights: headLink.weights,
    head_output: headLink.output,
    layer_weights: layer.weights,
    layer_output: layer.output,
  };
}

// -- the step list ----------------------------------------------------------------------------------------

function renderSteps(state) {
  const current = stepOf(state);
  const list = clear($("build-steps"));
  STEPS.forEach((step, i) => {
    const button = h(
      "button",
      {
        type: "button",
        "data-step": step,
        "aria-current": step === current ? "step" : null,
        onclick: () => {
          setState({ step });
          renderSteps(getState());
          renderStep(getState());
        },
      },
      `${i + 1}. ${t(`build.${step}.short`)}`,
    );
    list.append(h("li", {}, button));
  });
  $("build-prev").disabled = current === STEPS[0];
  $("build-next").disabled = current === STEPS[STEPS.length - 1];
}

function renderStep(state) {
  if (!data) return;
  renderSteps(state);
  const step = stepOf(state);
  const panel = clear($("build-panel"));
  const formula = document.getElementById(`math-${step}`).content.cloneNode(true);
  const results = h("div", { class: "results", "aria-live": "polite" });
  const { controls, update } = STEP_VIEWS[step]();
  const refresh = () => {
    clear(results);
    results.append(...update(getState()));
  };
  panel.append(
    h("h3", {}, t(`build.${step}.title`)),
    h("p", {}, t(`build.${step}.intro`, { width: data.width, heads: data.heads, head_width: data.width / data.heads })),
    formula,
    h("div", { class: "row controls" }, controls(refresh)),
    results,
  );
  refresh();
}

// -- shared controls --------------------------------------------------------------------------------------

function wordSelect(id, labelKey, stateKey, refresh) {
  const chosen = stateKey === "focus" ? focusOf(getState()) : otherOf(getState());
  const select = h(
    "select",
    {
      id,
      onchange: () => {
        setState({ [stateKey]: select.value });
        refresh();
      },
    },
    data.words.map((word, i) => h("option", { value: i, selected: i === chosen }, word)),
  );
  return [h("label", { for: id }, t(labelKey)), select];
}

/** The word in focus: chosen, or the article head's (riley in the article's sentence). */
function focusOf(state) {
  return wordIndex(state.focus, data.article_head.focus);
}

function otherOf(state) {
  const focus = focusOf(state);
  const other = wordIndex(state.other, data.article_head.other);
  return other === focus ? (focus + 1) % data.words.length : other;
}

/** The toggle between the tour's head and the article's literal vectors (steps 2–5). */
function rawToggle(refresh) {
  return checkbox("build-raw", "build.raw.toggle", getState().raw === "1", (on) => {
    setState({ raw: on ? "1" : null });
    refresh();
  });
}

/** Which vectors a step reads, in one line. */
function sourceLine(src) {
  const { focus, other, head, there, back } = data.article_head;
  if (src.raw) return t("build.source.raw", { width: src.width });
  return t("build.source.head", {
    head,
    heads: data.heads,
    width: src.width,
    a: data.words[focus],
    b: data.words[other],
    there: fmt(there),
    back: fmt(back),
  });
}

function checkbox(id, labelKey, checked, onchange) {
  const input = h("input", { id, type: "checkbox", checked, onchange: () => onchange(input.checked) });
  return h("label", { for: id, class: "check-label" }, input, " ", t(labelKey));
}

function facts(...lines) {
  return h("ul", { class: "facts" }, lines.filter(Boolean).map((line) => h("li", {}, line)));
}

function changedLine(text) {
  return h("p", { class: "changed" }, h("strong", {}, t("build.changed") + " "), text);
}

function breaksLine(text) {
  return h("p", { class: "breaks" }, h("strong", {}, t("build.breaks") + " "), text);
}

/** The matrix and the focus word's arcs. Weights (mode "weights") draw on a fixed scale: 1 is the widest arc. */
function figures(matrix, words, focus, caption, mode) {
  const outgoing = matrix[focus];
  const incoming = matrix.map((row) => row[focus]);
  const legend = (largest) => t(mode === "signed" ? "build.legend_signed" : "build.legend_weights", { max: largest });
  return h(
    "div",
    { class: "build-figures" },
    matrixTable(matrix, words, words, { caption, mode, focus, legend }),
    h(
      "div",
      { class: "scroll", tabindex: "0", role: "region", "aria-label": t("build.arcs_label", { word: words[focus] }) },
      arcs(words, focus, outgoing, incoming, {
        above: t("build.arcs_out", { word: words[focus] }),
        below: t("build.arcs_in", { word: words[focus] }),
        label: t("build.arcs_label", { word: words[focus] }),
        largest: mode === "weights" ? 1 : undefined,
      }),
    ),
  );
}

/** Rows whose division by their sum goes wrong: negative entries, a sum below 0, a sum near 0 (×10 or more). */
function sumReport(matrix) {
  let negative = 0;
  let flipped = 0;
  let nearZero = 0;
  let negativeCount = 0;
  for (const row of matrix) {
    const total = row.reduce((a, b) => a + b, 0);
    const absolute = row.reduce((a, b) => a + Math.abs(b), 0);
    const count = row.filter((x) => x < 0).length;
    negativeCount += count;
    if (count) negative += 1;
    if (total < 0) flipped += 1;
    if (!(absolute / Math.abs(total) < 10)) nearZero += 1;
  }
  return { negative, flipped, nearZero, negativeCount };
}

// -- the steps --------------------------------------------------------------------------------------------

const nearestLater = debounce(async (vector, exclude, list) => {
  try {
    const answer = await api.nearest(vector, 5, exclude);
    clear(list).append(...answer.words.map((w) => h("li", {}, `${w.word} ${fmt(w.similarity, 2)}`)));
  } catch (error) {
    showError(error);
  }
}, 150);

const STEP_VIEWS = {
  mix() {
    let nearest = h("ul", { class: "nearest", "aria-label": t("build.mix.nearest") });
    const controls = (refresh) => {
      const state = getState();
      const ratio = state.ratio !== undefined ? Number(state.ratio) : 0.75;
      const slider = h("input", {
        id: "build-ratio",
        type: "range",
        min: 0,
        max: 1,
        step: 0.05,
        value: ratio,
        oninput: () => {
          setState({ ratio: slider.value });
          output.value = fmt(Number(slider.value), 2);
          refresh();
        },
      });
      const output = h("output", { for: "build-ratio" }, fmt(ratio, 2));
      return [
        ...wordSelect("build-focus", "build.word_a", "focus", refresh),
        ...wordSelect("build-other", "build.word_b", "other", refresh),
        h("span", { class: "slider" }, h("label", { for: "build-ratio" }, t("build.mix.ratio")), slider, output),
      ];
    };
    const update = (state) => {
      const a = focusOf(state);
      const b = otherOf(state);
      const ratio = state.ratio !== undefined ? Number(state.ratio) : 0.75;
      const words = data.words;
      const mixed = m.mix(data.values[a], data.values[b], ratio);
      nearestLater(mixed, [words[a]], nearest);
      const weights = m.fixedRatioWeights(words.length, ratio);
      const notB = words.findIndex((_, i) => i !== a && i !== b);
      return [
        facts(
          t("build.mix.cos", {
            a: words[a],
            b: words[b],
            before: fmt(m.cosine(data.values[a], data.values[b])),
            after: fmt(m.cosine(mixed, data.values[b])),
          }),
          t("build.mix.self", { a: words[a], value: fmt(m.cosine(mixed, data.values[a])) }),
        ),
        h("p", {}, t("build.mix.nearest")),
        nearest,
        matrixTable(weights, words, words, {
          caption: t("build.mix.matrix"),
          focus: a,
          legend: (largest) => t("build.legend_weights", { max: largest }),
        }),
        changedLine(t("build.mix.changed", { a: words[a], b: words[b], ratio: fmt(ratio, 2), rest: fmt(1 - ratio, 2) })),
        breaksLine(
          t("build.mix.breaks", {
            a: words[a],
            b: words[b],
            c: notB >= 0 ? words[notB] : words[b],
            weight: fmt(weights[a][b]),
          }),
        ),
      ];
    };
    return { controls, update };
  },

  keys() {
    const controls = (refresh) => [
      ...wordSelect("build-focus", "build.word", "focus", refresh),
      ...wordSelect("build-other", "build.word_b", "other", refresh),
      rawToggle(refresh),
    ];
    const update = (state) => {
      const focus = focusOf(state);
      const other = otherOf(state);
      const words = data.words;
      const src = source(data, state);
      const relevance = m.timesTransposed(src.unitKeys, src.unitKeys);
      const row = relevance[focus];
      const lowest = m.argmin(row);
      const report = sumReport(relevance);
      const sums = m.rowSums(relevance);
      const total = sums[focus];
      const amplification = row.reduce((x, y) => x + Math.abs(y), 0) / Math.abs(total);
      const weights = row.map((x) => x / total);
      const others = row.map((x, i) => (i === focus ? -Infinity : x));
      const best = m.argmax(others);
      const signs = report.negativeCount
        ? [
            t("build.keys.negatives", {
              count: report.negativeCount,
              total: words.length ** 2,
              word: words[focus],
              lowest: words[lowest],
              value: fmt(row[lowest]),
            }),
            t("build.keys.divide", { word: words[focus], sum: fmt(total), times: fmt(amplification, 2) }),
          ]
        : [
            t("build.keys.positive", { low: fmt(Math.min(...relevance.flat())) }),
            t("build.keys.divided", {
              a: words[focus],
              b: words[other],
              there: fmt(relevance[focus][other] / total),
              back: fmt(relevance[other][focus] / sums[other]),
              sum_a: fmt(total),
              sum_b: fmt(sums[other]),
            }),
          ];
      return [
        facts(
          sourceLine(src),
          t("build.keys.pair", {
            a: words[focus],
            b: words[other],
            there: fmt(relevance[focus][other]),
            back: fmt(relevance[other][focus]),
          }),
          t("build.keys.gap", { gap: sci(m.asymmetryGap(relevance)) }),
          ...signs,
        ),
        figures(relevance, words, focus, t("build.keys.matrix"), "signed"),
        changedLine(
          t("build.keys.changed", {
            word: words[focus],
            best: words[best],
            high: fmt(weights[best]),
            worst: words[lowest],
            low: fmt(weights[lowest]),
          }),
        ),
        breaksLine(
          t(report.negativeCount ? "build.keys.breaks" : "build.keys.breaks_positive", {
            a: words[focus],
            b: words[other],
          }),
        ),
      ];
    };
    return { controls, update };
  },

  queries() {
    const controls = (refresh) => [
      ...wordSelect("build-focus", "build.word", "focus", refresh),
      ...wordSelect("build-other", "build.word_b", "other", refresh),
      rawToggle(refresh),
    ];
    const update = (state) => {
      const focus = focusOf(state);
      const other = otherOf(state);
      const words = data.words;
      const src = source(data, state);
      const scores = m.timesTransposed(src.queries, src.keys);
      const flat = scores.flat();
      const report = sumReport(scores);
      const rank = (row, index) => row.filter((x) => x > row[index]).length + 1;
      return [
        facts(
          sourceLine(src),
          t("build.queries.pair", {
            a: words[focus],
            b: words[other],
            there: fmt(scores[focus][other]),
            back: fmt(scores[other][focus]),
          }),
          t("build.queries.ranks", {
            a: words[focus],
            b: words[other],
            rank_a: rank(scores[focus], other),
            rank_b: rank(scores[other], focus),
            rows: words.length,
          }),
          t("build.queries.gap", { gap: fmt(m.asymmetryGap(scores)) }),
          t("build.queries.range", { low: fmt(Math.min(...flat)), high: fmt(Math.max(...flat)) }),
          t("build.queries.sums", {
            negative: report.negative,
            flipped: report.flipped,
            near_zero: report.nearZero,
            rows: words.length,
          }),
        ),
        figures(scores, words, focus, t("build.queries.matrix"), "signed"),
        changedLine(t("build.queries.changed", { a: words[focus] })),
        breaksLine(t("build.queries.breaks")),
      ];
    };
    return { controls, update };
  },

  softmax() {
    const controls = (refresh) => {
      const chosen = getState().norm === "sum" ? "sum" : "softmax";
      const radio = (value) => {
        const input = h("input", {
          type: "radio",
          name: "build-norm",
          id: `build-norm-${value}`,
          value,
          checked: value === chosen,
          onchange: () => {
            setState({ norm: value });
            refresh();
          },
        });
        return h("label", { for: `build-norm-${value}` }, input, " ", t(`build.softmax.${value}`));
      };
      return [
        ...wordSelect("build-focus", "build.word", "focus", refresh),
        h("fieldset", { class: "row" }, h("legend", { class: "sr-only" }, t("build.softmax.choice")), radio("sum"), radio("softmax")),
        rawToggle(refresh),
      ];
    };
    const update = (state) => {
      const focus = focusOf(state);
      const words = data.words;
      const src = source(data, state);
      const scores = m.timesTransposed(src.queries, src.keys);
      const useSum = state.norm === "sum";
      const summed = m.divideBySum(scores);
      const soft = m.softmax(scores);
      const weights = useSum ? summed : soft;
      const reversed = summed.filter((row, i) => m.argmax(row) === m.argmin(scores[i])).length;
      const kept = soft.filter((row, i) => m.argmax(row) === m.argmax(scores[i])).length;
      const negativeRows = summed.filter((row) => row.some((x) => x < 0)).length;
      const rowGap = Math.max(...m.rowSums(weights).map((x) => Math.abs(x - 1)));
      const lines = useSum
        ? [t("build.softmax.sum_facts", { negative: negativeRows, reversed, rows: words.length })]
        : [
            t("build.softmax.softmax_facts", { gap: sci(rowGap), kept, rows: words.length }),
            t("build.softmax.sharp", {
              spread: fmt(m.standardDeviation(scores)),
              max: fmt(m.mean(soft.map((row) => Math.max(...row)))),
              bits: fmt(m.mean(soft.map(m.entropyBits)), 2),
              even: fmt(Math.log2(words.length), 2),
            }),
          ];
      return [
        facts(sourceLine(src), ...lines),
        figures(weights, words, focus, t("build.softmax.matrix"), useSum ? "signed" : "weights"),
        changedLine(t(useSum ? "build.softmax.changed_sum" : "build.softmax.changed")),
        breaksLine(t(useSum ? "build.softmax.breaks_sum" : "build.softmax.breaks", { width: src.width })),
      ];
    };
    return { controls, update };
  },

  scale() {
    const controls = (refresh) => [
      ...wordSelect("build-focus", "build.word", "focus", refresh),
      ...wordSelect("build-other", "build.word_b", "other", refresh),
      checkbox("build-scaled", "build.scale.toggle", getState().scaled !== "0", (on) => {
        setState({ scaled: on ? null : "0" });
        refresh();
      }),
      rawToggle(refresh),
    ];
    const update = (state) => {
      const focus = focusOf(state);
      const other = otherOf(state);
      const words = data.words;
      const src = source(data, state);
      const scaled = state.scaled !== "0";
      const raw = m.timesTransposed(src.queries, src.keys);
      const factor = 1 / Math.sqrt(src.width);
      const unscaledWeights = m.softmax(raw);
      const scaledWeights = m.softmax(m.scale(raw, factor));
      const weights = scaled ? scaledWeights : unscaledWeights;
      const sharp = (w) => fmt(m.mean(w.map((row) => Math.max(...row))));
      const bits = (w) => fmt(m.mean(w.map(m.entropyBits)), 2);
      const link = finalLink(src);
      return [
        facts(
          sourceLine(src),
          t("build.scale.pair", {
            a: words[focus],
            b: words[other],
            there: fmt(weights[focus][other]),
            back: fmt(weights[other][focus]),
          }),
          t("build.scale.spread", {
            unscaled: fmt(m.standardDeviation(raw)),
            scaled: fmt(m.standardDeviation(raw) * factor),
            factor: fmt(factor, 4),
          }),
          t("build.scale.sharpness", {
            max_u: sharp(unscaledWeights),
            max_s: sharp(scaledWeights),
            bits_u: bits(unscaledWeights),
            bits_s: bits(scaledWeights),
            even: fmt(Math.log2(words.length), 2),
            even_max: fmt(1 / words.length, 2),
          }),
          flatNote(weights),
        ),
        figures(weights, words, focus, t("build.scale.matrix"), "weights"),
        src.raw
          ? attendCheck(link.output, data.reference.output, data.reference.attend_difference)
          : attendCheck(link.output, data.reference.head_output, data.reference.head_attend_difference),
        changedLine(t("build.scale.changed")),
        breaksLine(t("build.scale.breaks", { width: src.values[0].length })),
      ];
    };
    return { controls, update };
  },

  heads() {
    const count = data.heads;
    const width = data.width / count;
    const all = layerRun(data, false);
    const headOf = (state) => headIndex(state);
    const controls = (refresh) => {
      const strip = h("ul", { class: "heads-strip", "aria-label": t("build.heads.pick") });
      all.weights.forEach((weights, head) => {
        const canvas = h("canvas", { "aria-hidden": "true" });
        drawWeights(canvas, Float64Array.from(weights.flat()), weights.length, weights.length, { max: 1 });
        const button = h(
          "button",
          {
            type: "button",
            "aria-pressed": String(head === headOf(getState())),
            "aria-label": t("build.heads.head", { head }),
            onclick: () => {
              setState({ bhead: head });
              for (const other of strip.querySelectorAll("button")) other.setAttribute("aria-pressed", "false");
              button.setAttribute("aria-pressed", "true");
              refresh();
            },
          },
          canvas,
          h("span", { "aria-hidden": "true" }, String(head)),
        );
        strip.append(h("li", {}, button));
      });
      return [...wordSelect("build-focus", "build.word", "focus", refresh), strip];
    };
    const update = (state) => {
      const focus = focusOf(state);
      const head = headOf(state);
      const words = data.words;
      const firsts = all.weights.map((weights) => {
        const best = m.argmax(weights[focus]); // itself included, as qkv tour counts
        return { word: words[best], weight: weights[focus][best] };
      });
      const distinct = new Set(firsts.map((f) => f.word)).size;
      const chosen = data.article_head;
      return [
        facts(
          t("build.heads.inputs"),
          t("build.heads.firsts", {
            word: words[focus],
            list: firsts.map((f, i) => `${i}: ${f.word} ${fmt(f.weight, 2)}`).join(" · "),
          }),
          t("build.heads.distinct", { distinct, heads: count }),
          t("build.heads.article", {
            head: chosen.head,
            a: words[chosen.focus],
            b: words[chosen.other],
            there: fmt(all.weights[chosen.head][chosen.focus][chosen.other]),
            back: fmt(all.weights[chosen.head][chosen.other][chosen.focus]),
          }),
          t("build.heads.concat", { heads: count, head_width: width, width: data.width }),
          flatNote(all.weights[head]),
        ),
        figures(all.weights[head], words, focus, t("build.heads.matrix", { head }), "weights"),
        attendCheck(all.output, data.reference.layer_output, data.reference.layer_attend_difference),
        changedLine(t("build.heads.changed", { word: words[focus] })),
        breaksLine(t("build.heads.breaks")),
      ];
    };
    return { controls, update };
  },

  positions() {
    const controls = (refresh) => [
      ...wordSelect("build-focus", "build.word", "focus", refresh),
      checkbox("build-pos", "build.positions.toggle", getState().pos === "1", (on) => {
        setState({ pos: on ? "1" : null });
        refresh();
      }),
      h("button", { type: "button", id: "build-shuffle", onclick: () => shuffle() }, t("build.positions.shuffle")),
      h(
        "button",
        {
          type: "button",
          id: "build-unshuffle",
          disabled: !shuffled,
          onclick: () => {
            setState({ order: null });
            buildView.show(getState());
          },
        },
        t("build.positions.restore"),
      ),
    ];
    const update = (state) => {
      const withPositions = state.pos === "1";
      const head = headIndex(state);
      const base = layerRun(data, false);
      const view = shuffled ? shuffled : data;
      const current = shuffled ? layerRun(shuffled, withPositions) : layerRun(data, withPositions);
      const words = view.words;
      const focusWord = focusOf(state);
      const focus = shuffled ? shuffled.order.indexOf(focusWord) : focusWord;
      const lines = [];
      if (shuffled) {
        const back = m.inverse(shuffled.order); // row i of the shuffled outputs belongs to word order[i]
        const without = m.maxAbsDifference(m.permuteRows(layerRun(shuffled, false).output, back), base.output);
        const withPos = m.maxAbsDifference(
          m.permuteRows(layerRun(shuffled, true).output, back),
          layerRun(data, true).output,
        );
        lines.push(
          t("build.positions.order", { words: words.join(" ") }),
          t("build.positions.without", { difference: sci(without) }),
          t("build.positions.with", { difference: fmt(withPos) }),
        );
      } else {
        lines.push(t("build.positions.try"));
      }
      lines.push(t("build.positions.layer", { head, heads: data.heads }), flatNote(current.weights[head]));
      return [
        facts(...lines),
        figures(current.weights[head], words, focus, t("build.positions.matrix", { head }), "weights"),
        attendCheck(base.output, data.reference.layer_output, data.reference.layer_attend_difference),
        changedLine(t(withPositions ? "build.positions.changed_on" : "build.positions.changed_off")),
        breaksLine(t("build.positions.breaks")),
      ];
    };
    return { controls, update };
  },
};

/** The head shown in Heads and Positions: the one clicked, or the article head (the tour's). */
function headIndex(state) {
  const head = Number(state.bhead);
  return state.bhead !== undefined && Number.isInteger(head) && head >= 0 && head < data.heads ? head : data.article_head.head;
}

/** A note when no weight reaches twice the even share (the article's raw embeddings are short). */
function flatNote(weights) {
  const top = Math.max(...weights.flat());
  return top < 2 / weights[0].length ? t("build.flat", { top: fmt(top), even: fmt(1 / weights[0].length) }) : null;
}

/** This page's outputs against Python's for the same step, beside Python's own difference from qkv.attend. */
function attendCheck(output, reference, python) {
  return h(
    "p",
    { class: "check", id: "build-attend-check" },
    t("build.check", { difference: sci(m.maxAbsDifference(output, reference)), python: sci(python) }),
  );
}

async function shuffle() {
  const count = data.words.length;
  let order = [...Array(count).keys()];
  if (count > 1) {
    do {
      for (let i = count - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
    } while (order.every((x, i) => x === i));
  }
  setState({ order: order.join(".") });
  await buildView.show(getState());
}
