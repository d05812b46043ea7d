// Canvas heatmaps: one pixel per cell, one putImageData per matrix, scaled up by CSS (image-rendering: pixelated).
// Shared by the explorer and the self-contained pages (qkv/web: inlined there as one classic script). Every head
// is shaded against its scale (scaleOf, as qkv.data.scale computes it), sink columns in grey against 1.

import { VIRIDIS } from "./viridis.js";

export const PERCENTILE = 99; // qkv.data.scale.PERCENTILE
const TINY = 1.1754943508222875e-38; // the smallest normal float32: a scale is never below it

/** A head's colour scale: the PERCENTILE-th percentile (nearest rank) of its weights outside the sink columns
 * and, for a causal trace, outside the future; 1 when no cell counts. */
export function scaleOf(values, T, sinks, causal) {
  const cells = [];
  for (let t = 0; t < T; t++) {
    for (let s = 0; s < (causal ? t + 1 : T); s++) if (!sinks[s]) cells.push(values[t * T + s]);
  }
  if (!cells.length) return 1;
  const sorted = Float32Array.from(cells).sort();
  return Math.max(sorted[Math.max(1, Math.ceil((PERCENTILE / 100) * sorted.length)) - 1], TINY);
}

/** The largest finite entry (0 for none). */
export function largest(values) {
  let top = 0;
  for (let i = 0; i < values.length; i++) if (values[i] > top) top = values[i];
  return top;
}

/**
 * Draw `values` (rows × cols, row-major) through viridis, 0 → dark, `max` (default: the largest) → yellow;
 * above `max` stays yellow. `grey`: one flag per column; those columns (qkv's sink tokens) are drawn apart in
 * grey against 1, as every heatmap of qkv draws them.
 */
export function drawWeights(canvas, values, rows, cols, { max, grey } = {}) {
  canvas.width = cols;
  canvas.height = rows;
  const context = canvas.getContext("2d");
  const image = context.createImageData(cols, rows);
  const pixels = image.data;
  const top = max ?? largest(values);
  const scale = top > 0 ? 255 / top : 0;
  for (let i = 0, n = rows * cols; i < n; i++) {
    const p = i * 4;
    if (grey && grey[i % cols]) {
      pixels[p] = pixels[p + 1] = pixels[p + 2] = greyLevel(values[i]);
      pixels[p + 3] = 255;
      continue;
    }
    let level = Math.round(values[i] * scale);
    level = level < 0 ? 0 : level > 255 ? 255 : level;
    const c = level * 3;
    pixels[p] = VIRIDIS[c];
    pixels[p + 1] = VIRIDIS[c + 1];
    pixels[p + 2] = VIRIDIS[c + 2];
    pixels[p + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

export const GREY_LOW = 40; // the grey of a weight of 0 in a sink column (dark, like viridis' 0)
export const GREY_HIGH = 230; // the grey of a weight of 1

/** The grey (one channel, 0-255) of weight x in a sink column: GREY_LOW at 0, GREY_HIGH at 1 and above. */
export function greyLevel(x) {
  const clamped = x < 0 ? 0 : x > 1 ? 1 : x;
  return Math.round(GREY_LOW + (GREY_HIGH - GREY_LOW) * clamped);
}

/** Outline row `index` and column `index` of a rows × cols heatmap on `overlay` (a canvas over it); -1: none. */
export function outlineToken(overlay, index, rows, cols) {
  const context = overlay.getContext("2d");
  context.clearRect(0, 0, overlay.width, overlay.height);
  if (index < 0 || index >= rows) return;
  const cellW = overlay.width / cols;
  const cellH = overlay.height / rows;
  context.lineWidth = 2;
  context.strokeStyle = "#ff7f0e";
  context.strokeRect(0, index * cellH, overlay.width, Math.max(cellH, 1));
  if (index < cols) {
    context.strokeStyle = "#e377c2";
    context.strokeRect(index * cellW, 0, Math.max(cellW, 1), overlay.height);
  }
}

/** Draw n × n bytes (0-255) starting at `offset` of `bytes`: one thumbnail of the server's (L, H, n, n). */
export function drawBytes(canvas, bytes, offset, n) {
  canvas.width = n;
  canvas.height = n;
  const context = canvas.getContext("2d");
  const image = context.createImageData(n, n);
  const pixels = image.data;
  for (let i = 0; i < n * n; i++) {
    const c = bytes[offset + i] * 3;
    const p = i * 4;
    pixels[p] = VIRIDIS[c];
    pixels[p + 1] = VIRIDIS[c + 1];
    pixels[p + 2] = VIRIDIS[c + 2];
    pixels[p + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

/** viridis at x in [0, 1] as [r, g, b]. */
export function viridis(x) {
  const level = Math.max(0, Math.min(255, Math.round(x * 255))) * 3;
  return [VIRIDIS[level], VIRIDIS[level + 1], VIRIDIS[level + 2]];
}

const NEGATIVE = [179, 88, 6]; // orange: a negative number
const NEUTRAL = [247, 247, 247];
const POSITIVE = [33, 102, 172]; // blue: a positive number

/** A diverging colour for x in [-1, 1]: orange below 0, blue above, near-white at 0. */
export function diverging(x) {
  const clamped = Math.max(-1, Math.min(1, x));
  const end = clamped < 0 ? NEGATIVE : POSITIVE;
  const a = Math.abs(clamped);
  return NEUTRAL.map((n, i) => Math.round(n + (end[i] - n) * a));
}

function luminance([r, g, b]) {
  const channel = (v) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
}

/** CSS colours for a cell of background `rgb`: the text colour (black or white) with the higher contrast. */
export function cellColours(rgb) {
  const l = luminance(rgb);
  const onBlack = (l + 0.05) / 0.05;
  const onWhite = 1.05 / (l + 0.05);
  return { background: `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`, color: onBlack >= onWhite ? "#000" : "#fff" };
}

export function css(rgb) {
  return `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
}
