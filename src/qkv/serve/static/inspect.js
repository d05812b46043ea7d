// Inspect: any text through any model. A layer × head grid of thumbnails, one head in detail (canvas heatmap and
// the hovered token's lines in SVG), the mean of heads, the exactness badge, queries and keys, and export.

import { api, base64ToBytes, clearError, showError } from "./api.js";
import { $, clear, fmt, h, sci } from "./dom.js";
import { s, SVG_NS } from "./svg.js";
import { drawWeights, outlineToken, scaleOf } from "./heatmap.js";
import { HeadGrid, legendText } from "./grid.js";
import { t } from "./i18n.js";
import { LINE_WIDTH, TokenLines, tokenAt } from "./lines.js";
import { getState, setState } from "./state.js";

export const METRICS = ["entropy", "distance", "asymmetry", "sink_share"];

let overview = null; // the trace's overview, with .bytes (the thumbnails) and .request ("model|text")
let shown = null; // {layer, head, weights} drawn now
let grid = null;
let sequence = 0; // the newest head request; older answers are dropped
let tokenLocked = -1;
let retraced = false; // a dropped trace is traced again once, not in a loop
let tokenLines = null; // the hovered token's lines (lines.js), made on the first trace

const timings = { hover: [], head: [] };

function publish() {
  window.qkvExplorer = window.qkvExplorer || {};
  window.qkvExplorer.timings = timings;
  window.qkvExplorer.lineWidth = LINE_WIDTH;
  window.qkvExplorer.inspect = { id: overview && overview.id, shown: shown && { layer: shown.layer, head: shown.head } };
}

export const inspectView = {
  init(models) {
    const select = $("inspect-model");
    clear(select);
    for (const model of models.models) {
      if (!model.available) continue;
      select.append(h("option", { value: model.name }, model.name));
    }
    const describe = () => {
      const model = models.models.find((x) => x.name === select.value);
      $("inspect-model-detail").textContent = model ? model.detail : "";
    };
    select.addEventListener("change", describe);
    describe();
    $("inspect-text").maxLength = models.limits.text_chars;
    $("inspect-form").addEventListener("submit", (event) => {
      event.preventDefault();
      setState({ model: select.value, text: $("inspect-text").value, layer: null, head: null, tok: null });
      this.show(getState());
    });
    for (const [id, key] of [
      ["inspect-color", "color"],
      ["inspect-sort", "sort"],
    ]) {
      $(id).addEventListener("change", () => {
        setState({ [key]: $(id).value });
        renderGrid(getState());
      });
    }
    $("inspect-mean").addEventListener("click", () => {
      const state = getState();
      const mean = state.head !== "mean";
      setState({ head: mean ? "mean" : String(grid.locked ? grid.locked.head : 0) });
      showLocked(getState());
    });
    $("inspect-qk").addEventListener("click", () => {
      const on = getState().qk !== "1";
      setState({ qk: on ? "1" : null });
      showQk(getState());
    });
    $("export-png").addEventListener("click", exportPng);
    $("export-svg").addEventListener("click", exportSvg);
    bindLines();
    publish();
  },

  /** Fill the form from the hash; trace again when the model or the text changed. */
  async show(state) {
    fillOptions(state);
    if (state.model) $("inspect-model").value = state.model;
    $("inspect-model").dispatchEvent(new Event("change"));
    $("inspect-text").value = state.text ?? ($("inspect-text").value || t("inspect.default_text"));
    if (!state.text || !state.model) return;
    const request = `${state.model}|${state.text}`;
    if (!overview || overview.request !== request) {
      $("inspect-status").textContent = t("inspect.tracing");
      try {
        overview = await api.trace(state.model, state.text);
      } catch (error) {
        $("inspect-status").textContent = "";
        showError(error);
        return;
      }
      clearError();
      overview.request = request;
      overview.bytes = base64ToBytes(overview.thumbs.data);
      const tok = Number(state.tok);
      tokenLocked = Number.isInteger(tok) && tok >= 0 && tok < overview.tokens.length ? tok : -1;
      buildTokens();
      $("inspect-status").textContent = t("inspect.traced", {
        tokens: overview.tokens.length,
        layers: overview.layers.length,
        heads: overview.heads,
      });
      $("export-json").href = api.exportUrl(overview.id, "json");
      $("export-json").setAttribute("download", `qkv-trace-${overview.model}.json`);
      $("export-html").href = api.exportUrl(overview.id, "html");
      $("export-html").setAttribute("download", `qkv-trace-${overview.model}.html`);
    }
    $("inspect-result").hidden = false;
    $("inspect-exactness").textContent = t("inspect.exactness", { value: sci(overview.exactness) });
    $("inspect-exactness").title = t("inspect.exactness_help");
    renderGrid(state);
    await showLocked(state);
    publish();
  },
};

function fillOptions(state) {
  for (const [id, key] of [
    ["inspect-color", "color"],
    ["inspect-sort", "sort"],
  ]) {
    const select = clear($(id));
    select.append(h("option", { value: "" }, t("inspect.metric_none")));
    for (const name of METRICS) select.append(h("option", { value: name }, t(`metric.${name}`)));
    select.value = METRICS.includes(state[key]) ? state[key] : "";
  }
}

function lockedOf(state) {
  const layer = Number(state.layer);
  const layers = overview.layers;
  const chosenLayer = layers.includes(layer) ? layer : layers[0];
  if (state.head === "mean") return { layer: chosenLayer, head: "mean" };
  const head = Number(state.head);
  return { layer: chosenLayer, head: Number.isInteger(head) && head >= 0 && head < overview.heads ? head : 0 };
}

function renderGrid(state) {
  if (!overview) return;
  const colorBy = METRICS.includes(state.color) ? state.color : null;
  const sortBy = METRICS.includes(state.sort) ? state.sort : null;
  const metricName = sortBy || colorBy;
  grid = new HeadGrid($("inspect-grid"), {
    ariaLabel: t("inspect.grid_label"),
    label: (cell, value) =>
      t("inspect.cell", { layer: cell.layer, head: cell.head }) +
      (value === null ? "" : ` · ${t(`metric.${metricName}`)} ${fmt(value, 2)}`),
    onPreview: (cell) => {
      if (cell) showHead(cell.layer, cell.head, { preview: true });
      else showLocked(getState());
    },
    onLock: (cell) => {
      setState({ layer: cell.layer, head: cell.head });
      showLocked(getState());
    },
  });
  const locked = lockedOf(state);
  const range = grid.render({
    layers: overview.layers,
    heads: overview.heads,
    thumbs: { size: overview.thumbs.size, data: overview.bytes },
    metric: metricName ? { name: metricName, values: overview.metrics[metricName] } : null,
    sortBy: Boolean(sortBy),
    locked: locked.head === "mean" ? null : locked,
  });
  $("inspect-legend").textContent = metricName ? legendText(t(`metric.${metricName}`), range) : "";
}

async function showLocked(state) {
  if (!overview) return;
  const locked = lockedOf(state);
  $("inspect-mean").setAttribute("aria-pressed", String(locked.head === "mean"));
  if (grid && locked.head !== "mean") grid.markLocked(locked.layer, locked.head);
  await showHead(locked.layer, locked.head, { preview: false });
  showQk(state);
}

async function showHead(layer, head, { preview }) {
  const request = ++sequence;
  let weights;
  try {
    weights = await api.head(overview.id, layer, head);
  } catch (error) {
    if (error.status === 404 && !retraced) {
      // The server keeps a few traces only: this one was dropped, so trace the text again (once).
      retraced = true;
      overview = null;
      await inspectView.show(getState());
      return;
    }
    showError(error);
    return;
  }
  retraced = false;
  if (request !== sequence) return;
  const started = performance.now();
  shown = { layer, head, weights };
  const T = weights.rows;
  const S = weights.cols;
  const heatmap = $("inspect-heatmap");
  const sinks = overview.sinks;
  const scale = scaleOf(weights, T, sinks, overview.causal); // (T = S) as every heatmap of qkv shades a head
  drawWeights(heatmap, weights, T, S, { max: scale, grey: sinks });
  const size = Math.max(300, Math.min(480, Math.max(T, S) * 24));
  const cssWidth = Math.round((size * S) / Math.max(T, S));
  const cssHeight = Math.round((size * T) / Math.max(T, S));
  heatmap.style.width = `${cssWidth}px`;
  heatmap.style.height = `${cssHeight}px`;
  const overlay = $("inspect-overlay");
  overlay.width = cssWidth;
  overlay.height = cssHeight;
  overlay.style.width = `${cssWidth}px`;
  overlay.style.height = `${cssHeight}px`;
  const title =
    head === "mean" ? t("inspect.head_mean", { layer }) : t("inspect.head_title", { layer, head });
  $("inspect-head-title").textContent = preview ? `${title} ${t("inspect.preview")}` : title;
  heatmap.setAttribute("aria-label", t("inspect.heatmap_label", { title, tokens: T }));
  $("inspect-heatmap-caption").textContent = t("inspect.heatmap_caption", { max: fmt(scale) });
  highlight(tokenLocked, "left");
  timings.head.push(performance.now() - started);
  publish();
}

// -- tokens and lines -------------------------------------------------------------------------------------

function buildTokens() {
  tokenLines = tokenLines || new TokenLines($("inspect-lines"));
  tokenLines.setTokens(overview.labels, overview.special, { from: t("inspect.from"), to: t("inspect.to") });
}

/** Show token `index` on `side`: lines to whom it attends (left) or from who attends to it (right). */
function highlight(index, side) {
  const started = performance.now();
  const overlay = $("inspect-overlay");
  if (!shown || index < 0 || index >= shown.weights.rows) {
    if (tokenLines) tokenLines.highlight(-1, side);
    outlineToken(overlay, -1, 0, 0);
    return;
  }
  const { weights } = shown;
  tokenLines.setWeights(weights, weights.rows, weights.cols);
  const { outgoing } = tokenLines.highlight(index, side);
  outlineToken(overlay, index, weights.rows, weights.cols); // row `index` and column `index` on the heatmap
  const best = outgoing[0];
  $("inspect-hover").textContent = t("inspect.hover", {
    token: overview.labels[index],
    to: overview.labels[best[0]],
    weight: fmt(best[1]),
  });
  timings.hover.push(performance.now() - started);
}

function bindLines() {
  const svg = $("inspect-lines");
  let frame = 0;
  svg.addEventListener("mouseover", (event) => {
    const token = tokenAt(event);
    if (token) highlight(token.index, token.side);
  });
  svg.addEventListener("mouseleave", () => highlight(tokenLocked, "left"));
  svg.addEventListener("click", (event) => {
    const token = tokenAt(event);
    if (!token) return;
    tokenLocked = token.index;
    setState({ tok: tokenLocked });
    highlight(tokenLocked, token.side);
  });
  const wrap = $("inspect-lines-wrap");
  wrap.addEventListener("keydown", (event) => {
    if (!overview || !["ArrowDown", "ArrowUp", "Home", "End"].includes(event.key)) return;
    event.preventDefault();
    const last = overview.tokens.length - 1;
    const moves = { ArrowDown: 1, ArrowUp: -1, Home: -Infinity, End: Infinity };
    tokenLocked = Math.max(0, Math.min(last, (tokenLocked < 0 ? -1 : tokenLocked) + moves[event.key]));
    setState({ tok: tokenLocked });
    highlight(tokenLocked, "left");
    tokenLines.texts.left[tokenLocked].scrollIntoView({ block: "nearest" });
  });
  const heatmap = $("inspect-heatmap");
  heatmap.addEventListener("mousemove", (event) => {
    if (!shown) return;
    const box = heatmap.getBoundingClientRect();
    const q = Math.floor(((event.clientY - box.top) / box.height) * shown.weights.rows);
    const k = Math.floor(((event.clientX - box.left) / box.width) * shown.weights.cols);
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => {
      highlight(q, "left");
      $("inspect-hover").textContent = t("inspect.cell_hover", {
        from: overview.labels[q],
        to: overview.labels[k],
        weight: fmt(shown.weights[q * shown.weights.cols + k]),
      });
    });
  });
  heatmap.addEventListener("mouseleave", () => highlight(tokenLocked, "left"));
}

// -- queries and keys -------------------------------------------------------------------------------------

async function showQk(state) {
  const on = state.qk === "1";
  $("inspect-qk").setAttribute("aria-pressed", String(on));
  $("inspect-qk-panel").hidden = !on;
  if (!on || !overview) return;
  const locked = lockedOf(state);
  const plot = clear($("inspect-qk-plot"));
  if (locked.head === "mean") {
    $("inspect-qk-info").textContent = t("inspect.qk_one_head");
    return;
  }
  let answer;
  try {
    answer = await api.qk(overview.id, locked.layer, locked.head);
  } catch (error) {
    showError(error);
    return;
  }
  $("inspect-qk-info").textContent = t("inspect.qk_info", {
    correlation: fmt(answer.correlation),
    scale: fmt(answer.scale),
  });
  const points = [...answer.queries, ...answer.keys];
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const span = Math.max(x1 - x0, y1 - y0) || 1;
  const size = 360;
  const pad = 16;
  const px = (x) => pad + ((x - x0) / span) * (size - 2 * pad);
  const py = (y) => size - pad - ((y - y0) / span) * (size - 2 * pad);
  plot.setAttribute("viewBox", `0 0 ${size} ${size}`);
  plot.setAttribute("aria-label", t("inspect.qk_label", { layer: locked.layer, head: locked.head }));
  const labels = overview.labels;
  answer.keys.forEach(([x, y], i) => {
    plot.append(s("rect", { x: px(x) - 3, y: py(y) - 3, width: 6, height: 6, class: "k" }, s("title", {}, `${t("inspect.key")} ${labels[i]}`)));
  });
  answer.queries.forEach(([x, y], i) => {
    plot.append(s("circle", { cx: px(x), cy: py(y), r: 3.2, class: "q" }, s("title", {}, `${t("inspect.query")} ${labels[i]}`)));
  });
  plot.append(
    s("circle", { cx: 20, cy: 16, r: 4, class: "q" }),
    s("text", { x: 28, y: 20 }, t("inspect.queries")),
    s("rect", { x: 96, y: 12, width: 8, height: 8, class: "k" }),
    s("text", { x: 108, y: 20 }, t("inspect.keys")),
  );
}

// -- export -----------------------------------------------------------------------------------------------

/** Save a Blob as a file. */
function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function exportName(extension) {
  const head = shown.head === "mean" ? "mean" : `H${shown.head}`;
  return `qkv-${overview.model}-L${shown.layer}-${head}.${extension}`;
}

/** The heatmap enlarged (whole pixels per cell) under a title line, on a new canvas. */
function composed() {
  const heatmap = $("inspect-heatmap");
  const T = shown.weights.rows;
  const S = shown.weights.cols;
  const k = Math.max(1, Math.floor(1024 / Math.max(T, S)));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(S * k, 480);
  canvas.height = T * k + 40;
  const context = canvas.getContext("2d");
  context.fillStyle = "#ffffff";
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.fillStyle = "#000000";
  context.font = "16px sans-serif";
  context.fillText($("inspect-head-title").textContent + ` — ${overview.model}`, 8, 26);
  context.imageSmoothingEnabled = false;
  context.drawImage(heatmap, 0, 40, S * k, T * k);
  return canvas;
}

function exportPng() {
  if (!shown) return;
  composed().toBlob((blob) => download(blob, exportName("png")), "image/png");
}

function exportSvg() {
  if (!shown) return;
  const heatmap = $("inspect-heatmap");
  const lines = $("inspect-lines");
  const width = Number(heatmap.style.width.replace("px", ""));
  const height = Number(heatmap.style.height.replace("px", ""));
  const linesWidth = Number(lines.getAttribute("width"));
  const linesHeight = Number(lines.getAttribute("height"));
  const document_ = document.implementation.createDocument(SVG_NS, "svg", null);
  const root = document_.documentElement;
  const total = { w: width + linesWidth + 24, h: Math.max(height, linesHeight) + 40 };
  root.setAttribute("width", total.w);
  root.setAttribute("height", total.h);
  root.setAttribute("viewBox", `0 0 ${total.w} ${total.h}`);
  const add = (parent, tag, attrs, text) => {
    const element = document_.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) element.setAttribute(k, v);
    if (text) element.textContent = text;
    parent.append(element);
    return element;
  };
  add(root, "rect", { width: total.w, height: total.h, fill: "#ffffff" });
  add(root, "text", { x: 8, y: 24, "font-family": "sans-serif", "font-size": 16 }, `${$("inspect-head-title").textContent} — ${overview.model}`);
  const image = add(root, "image", { x: 8, y: 36, width, height, preserveAspectRatio: "none", "image-rendering": "pixelated" });
  image.setAttribute("href", heatmap.toDataURL("image/png"));
  const group = add(root, "g", { transform: `translate(${width + 16}, 36)`, "font-family": "monospace", "font-size": 12 });
  for (const node of lines.querySelectorAll("line[visibility='visible']")) {
    add(group, "line", {
      x1: node.getAttribute("x1"),
      y1: node.getAttribute("y1"),
      x2: node.getAttribute("x2"),
      y2: node.getAttribute("y2"),
      stroke: "#2c58a8",
      "stroke-width": node.getAttribute("stroke-width"),
      "stroke-linecap": "round",
    });
  }
  for (const node of lines.querySelectorAll("text")) {
    const attrs = { x: node.getAttribute("x"), y: node.getAttribute("y") };
    if (node.getAttribute("text-anchor")) attrs["text-anchor"] = node.getAttribute("text-anchor");
    if (node.classList.contains("hovered") || node.classList.contains("target")) attrs["font-weight"] = "bold";
    add(group, "text", attrs, node.textContent);
  }
  const text = new XMLSerializer().serializeToString(document_);
  download(new Blob([text], { type: "image/svg+xml" }), exportName("svg"));
}
