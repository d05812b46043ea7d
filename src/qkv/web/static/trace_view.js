// The self-contained view of a qkv attention trace (qkv.render.html: `qkv attend --format html`, `qkv tour --html`,
// show(trace) in a notebook), drawn with the explorer's modules: the layer × head grid of thumbnails (grid.js),
// the hovered token's lines (lines.js) and the heatmap canvas through viridis (heatmap.js). A page carries it
// inlined as one classic script (qkv.web.inline), which runs setUpViews(): every <div class="qkv-trace"> on the
// page not yet set up gets its menus, grid, lines and heatmap, built from the JSON beside it, so several views
// can share a page or a notebook. The view holds the matrices listed in data.held (every head of some layers, or
// one head), float32 or uint8 (data.encoding); the menus offer only what it holds. Every head is shaded against
// its scale: the 99th percentile of its weights outside the sink columns (and a causal trace's future), as
// qkv.data.scale computes it; sink columns are grey against 1. Its words are data.words (i18n/<lang>.json's
// "view." templates).

import { h } from "./dom.js";
import { drawWeights, outlineToken, scaleOf } from "./heatmap.js";
import { HeadGrid } from "./grid.js";
import { TokenLines, short, tokenAt } from "./lines.js";
import { sayer } from "./words.js";

export const THUMB_SIZE = 64; // a thumbnail is at most this many cells a side, as qkv.data.thumbnails

/** Set up every bare div.qkv-trace under `root`. */
export function setUpViews(root = document) {
  for (const element of root.querySelectorAll("div.qkv-trace")) {
    if (!element.getAttribute("data-ready")) setUp(element);
  }
}

/** The view's weights: held(l, h) says whether it can show layer index l, head h (-1: the mean of the heads);
 * matrix(l, h) gives them as a Float32Array (T × T, row-major). */
export function weightsOf(data) {
  const raw = atob(data.weights);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  const view = new DataView(bytes.buffer);
  const T = data.tokens.length;
  const n = T * T;
  const float = data.encoding === "float32";
  const slot = new Map(data.held.map(([l, head], index) => [`${l},${head}`, index]));
  const made = new Map();
  const one = (m) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = float ? view.getFloat32(4 * (m * n + i), true) : bytes[m * n + i] / 255;
    return out;
  };
  const held = (l, head) => {
    if (slot.has(`${l},${head}`)) return true;
    if (head >= 0) return false;
    for (let k = 0; k < data.heads; k++) if (!slot.has(`${l},${k}`)) return false;
    return true; // the mean, from every head of the layer
  };
  const matrix = (l, head) => {
    const key = `${l},${head}`;
    if (!made.has(key)) {
      if (slot.has(key)) made.set(key, one(slot.get(key)));
      else {
        const sum = new Float64Array(n);
        for (let k = 0; k < data.heads; k++) {
          const heads = matrix(l, k);
          for (let i = 0; i < n; i++) sum[i] += heads[i];
        }
        made.set(key, Float32Array.from(sum, (v) => v / data.heads));
      }
    }
    return made.get(key);
  };
  return { held, matrix };
}

/** `values` (T × T) max-pooled to n × n cells (adaptive pooling's windows), and which pooled columns hold a sink. */
export function pooled(values, T, sinks, n) {
  if (n >= T) return { cells: values, grey: sinks };
  const start = (i) => Math.floor((i * T) / n);
  const end = (i) => Math.ceil(((i + 1) * T) / n);
  const cells = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let top = 0;
      for (let t = start(i); t < end(i); t++) for (let s = start(j); s < end(j); s++) top = Math.max(top, values[t * T + s]);
      cells[i * n + j] = top;
    }
  }
  const grey = Array.from({ length: n }, (_, j) => sinks.slice(start(j), end(j)).some(Boolean));
  return { cells, grey };
}

function setUp(root) {
  root.setAttribute("data-ready", "1");
  root.classList.add("qkv-live");
  const part = (role) => root.querySelector(`[data-role=${role}]`);
  const data = JSON.parse(part("data").textContent);
  const say = sayer(data.words);
  const { held, matrix } = weightsOf(data);
  const T = data.tokens.length;
  const H = data.heads;
  const layerMenu = part("layer");
  const headMenu = part("head");
  const heatmap = part("heatmap");
  const overlay = part("overlay");
  const hover = part("hover");
  const fallback = part("fallback");
  if (fallback) fallback.open = false; // the picture stays a click away
  const scales = new Map();
  const scale = (l, head) => {
    const key = `${l},${head}`;
    if (!scales.has(key)) scales.set(key, scaleOf(matrix(l, head), T, data.sinks, data.causal));
    return scales.get(key);
  };

  // -- the menus: every layer and head, those the view does not hold disabled
  const option = (menu, value, label, enabled) => {
    menu.append(h("option", { value: String(value), disabled: !enabled }, enabled ? label : say("view.not_held", { label })));
  };
  data.layers.forEach((layer, l) => {
    let any = false;
    for (let k = -1; k < H; k++) any = any || held(l, k);
    option(layerMenu, l, String(layer), any);
  });
  const fillHeads = (l, wanted) => {
    headMenu.replaceChildren();
    option(headMenu, -1, say("view.mean", { heads: H }), held(l, -1));
    for (let k = 0; k < H; k++) option(headMenu, k, String(k), held(l, k));
    let pick = held(l, wanted) ? wanted : null;
    for (let k = -1; pick === null && k < H; k++) if (held(l, k)) pick = k;
    headMenu.value = String(pick);
  };
  layerMenu.value = String(data.layer);
  fillHeads(data.layer, data.head);

  // -- the lines: the tokens twice, the strongest lines while none is hovered, a hovered token's lines
  const widest = Math.max(1, ...data.tokens.map((token) => short(token).length));
  const labelWidth = Math.min(150, 10 + 7.3 * widest);
  const left = 40 + labelWidth;
  const lines = new TokenLines(part("lines"), {
    left,
    right: left + 150,
    row: 18,
    labelSpace: labelWidth + 8,
    overview: data.maxLines,
    sinks: data.sinks,
    values: true,
  });
  lines.setTokens(data.tokens, data.tokens.map((_, t) => data.special[t] || data.sinks[t]), {
    from: say("view.from"),
    to: say("view.to"),
  });
  let shown = null; // {l, head, values, scale}
  let locked = -1; // the token chosen by a click or the arrow keys (-1: none)

  const highlight = (index, side) => {
    const result = lines.highlight(index, side);
    if (heatmap) outlineToken(overlay, result ? index : -1, T, T);
    if (result) {
      const [to, weight] = result.outgoing[0];
      hover.textContent = say("view.hover", { token: data.tokens[index], to: data.tokens[to], weight: weight.toFixed(3) });
    } else {
      const { kept, total } = lines.overviewShown;
      hover.textContent = kept < total ? say("view.lines_cut", { kept, total }) : "";
    }
  };

  const show = (l, head) => {
    if (!held(l, head)) return;
    const values = matrix(l, head);
    shown = { l, head, values, scale: scale(l, head) };
    lines.setWeights(values, T, T, shown.scale);
    if (heatmap) {
      drawWeights(heatmap, values, T, T, { max: shown.scale, grey: data.sinks });
      const side = `${Math.max(240, Math.min(480, T * 24))}px`;
      for (const canvas of [heatmap, overlay]) canvas.style.width = canvas.style.height = side;
      overlay.width = overlay.height = Math.max(240, Math.min(480, T * 24));
      const which = head < 0 ? say("view.which_mean", { heads: H }) : say("view.which_head", { head });
      heatmap.setAttribute("aria-label", say("view.heatmap_label", { layer: data.layers[l], which, tokens: T }));
      heatmap.setAttribute("data-layer", String(l));
      heatmap.setAttribute("data-head", String(head));
    }
    const m = data.metrics[l][head < 0 ? H : head];
    const sinks = data.sinkNames ? say("view.sink_share", { share: m[4].toFixed(2), sinks: data.sinkNames }) : say("view.no_sinks");
    part("metrics").textContent = say("view.metrics", {
      entropy: m[0].toFixed(2),
      distance: m[1].toFixed(1),
      asymmetry: m[2].toFixed(2),
      relative: m[3].toFixed(2),
      sinks,
    });
    highlight(locked, "left");
  };
  const chosen = () => ({ l: Number(layerMenu.value), head: Number(headMenu.value) });

  // -- the grid: every head of the whole layers the view holds (none when it holds one head)
  const layersHeld = data.layers.filter((_, l) => {
    for (let k = 0; k < H; k++) if (!held(l, k)) return false;
    return true;
  });
  let grid = null;
  const box = part("grid");
  if (box && layersHeld.length * H > 1) {
    grid = new HeadGrid(box, {
      ariaLabel: say("view.grid_label"),
      label: (cell) => say("view.cell", { layer: cell.layer, head: cell.head }),
      onPreview: (cell) => (cell ? show(data.layers.indexOf(cell.layer), cell.head) : show(chosen().l, chosen().head)),
      onLock: (cell) => {
        layerMenu.value = String(data.layers.indexOf(cell.layer));
        fillHeads(Number(layerMenu.value), cell.head);
        show(chosen().l, chosen().head);
      },
    });
    grid.render({
      layers: layersHeld,
      heads: H,
      draw: (canvas, cell) => {
        const l = data.layers.indexOf(cell.layer);
        const n = Math.min(T, THUMB_SIZE);
        const { cells, grey } = pooled(matrix(l, cell.head), T, data.sinks, n);
        drawWeights(canvas, cells, n, n, { max: scale(l, cell.head), grey });
      },
      locked: data.head >= 0 ? { layer: data.layers[data.layer], head: data.head } : null,
    });
  } else if (box) {
    box.hidden = true;
    const help = part("grid-help");
    if (help) help.hidden = true;
  }
  const syncGrid = () => {
    if (grid) grid.markLocked(data.layers[chosen().l], chosen().head);
  };

  layerMenu.addEventListener("change", () => {
    fillHeads(chosen().l, chosen().head);
    syncGrid();
    show(chosen().l, chosen().head);
  });
  headMenu.addEventListener("change", () => {
    syncGrid();
    show(chosen().l, chosen().head);
  });

  // -- pointer and keys over the lines and the heatmap
  const svg = part("lines");
  svg.addEventListener("mouseover", (event) => {
    const token = tokenAt(event);
    if (token) highlight(token.index, token.side);
  });
  svg.addEventListener("mouseleave", () => highlight(locked, "left"));
  svg.addEventListener("click", (event) => {
    const token = tokenAt(event);
    if (!token) return;
    locked = locked === token.index ? -1 : token.index;
    highlight(locked >= 0 ? locked : token.index, token.side);
  });
  const wrap = part("lines-wrap");
  wrap.addEventListener("keydown", (event) => {
    const moves = { ArrowDown: 1, ArrowUp: -1, Home: -Infinity, End: Infinity };
    if (event.key === "Escape") locked = -1;
    else if (event.key in moves) locked = Math.max(0, Math.min(T - 1, (locked < 0 ? -1 : locked) + moves[event.key]));
    else return;
    event.preventDefault();
    highlight(locked, "left");
    if (locked >= 0) lines.texts.left[locked].scrollIntoView({ block: "nearest" });
  });
  if (heatmap) {
    heatmap.addEventListener("mousemove", (event) => {
      if (!shown) return;
      const box = heatmap.getBoundingClientRect();
      const q = Math.min(T - 1, Math.floor(((event.clientY - box.top) / box.height) * T));
      const k = Math.min(T - 1, Math.floor(((event.clientX - box.left) / box.width) * T));
      if (q < 0 || k < 0) return;
      highlight(q, "left");
      const weight = shown.values[q * T + k];
      hover.textContent = say("view.cell_hover", { from: data.tokens[q], to: data.tokens[k], weight: weight.toFixed(3) });
    });
    heatmap.addEventListener("mouseleave", () => highlight(locked, "left"));
  }
  show(chosen().l, chosen().head);
}
