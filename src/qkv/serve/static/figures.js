// The Build view's figures: a matrix as a coloured table of numbers, and a word's arrows as arcs.

import { h, fmt } from "./dom.js";
import { s } from "./svg.js";
import { cellColours, diverging, viridis } from "./heatmap.js";

/**
 * A (T, S) matrix as a table. mode "weights": viridis from 0 to 1 (weights are shares); "signed": orange below 0,
 * blue above, with negative cells outlined (dashed). focus: the row index to mark. legend(largest): a line below.
 */
export function matrixTable(matrix, rowLabels, columnLabels, { caption, mode = "weights", focus = -1, legend } = {}) {
  const flat = matrix.flat();
  const largest = mode === "weights" ? 1 : Math.max(...flat.map(Math.abs)) || 1;
  const head = h("tr", {}, h("td"), columnLabels.map((label) => h("th", { scope: "col" }, label)));
  const body = matrix.map((row, t) =>
    h(
      "tr",
      { class: t === focus ? "focus" : null },
      h("th", { scope: "row" }, rowLabels[t]),
      row.map((x) => {
        const rgb = mode === "signed" ? diverging(x / largest) : viridis(Math.max(0, x) / largest);
        const cell = h("td", { class: x < 0 ? "neg" : null, title: `${x}` }, fmt(x, 2));
        Object.assign(cell.style, cellColours(rgb));
        return cell;
      }),
    ),
  );
  return h(
    "div",
    { class: "scroll", tabindex: "0", role: "region", "aria-label": caption },
    h("table", { class: "matrix" }, h("caption", { class: "sr-only" }, caption), h("thead", {}, head), h("tbody", {}, body)),
    legend ? h("p", { class: "legend" }, legend(fmt(largest, 2))) : null,
  );
}

/**
 * Arcs between `words` laid on a line: above, from words[focus] to every other word (widths ∝ |outgoing|);
 * below, from every other word to it (∝ |incoming|). Both share one scale, so equal numbers draw equal widths;
 * a negative number draws a dashed arc. largest: the number drawn widest (default: the largest given).
 */
export function arcs(words, focus, outgoing, incoming, { above, below, label, largest: fixed }) {
  const spacing = Math.max(54, ...words.map((w) => w.length * 7.5 + 10));
  const width = spacing * words.length + 20;
  const middle = 120;
  const x = (i) => 10 + spacing * (i + 0.5);
  const largest = fixed ?? (Math.max(...outgoing.map(Math.abs), ...incoming.map(Math.abs)) || 1);
  const widest = 12;
  const paths = [];
  words.forEach((_, j) => {
    if (j === focus) return;
    for (const [direction, value, sign] of [
      ["out", outgoing[j], -1],
      ["in", incoming[j], 1],
    ]) {
      const x0 = x(focus);
      const x1 = x(j);
      const lift = Math.min(100, 18 + Math.abs(x1 - x0) * 0.22) * sign;
      const y0 = middle + sign * 12;
      const d = `M ${x0} ${y0} C ${x0} ${y0 + lift}, ${x1} ${y0 + lift}, ${x1} ${y0}`;
      const thickness = Math.max(0.5, (Math.abs(value) / largest) * widest);
      paths.push(
        s(
          "path",
          {
            d,
            class: `${direction}${value < 0 ? " negative" : ""}`,
            "stroke-width": thickness.toFixed(2),
            "data-from": direction === "out" ? focus : j,
            "data-to": direction === "out" ? j : focus,
            "data-value": value,
          },
          s("title", {}, `${direction === "out" ? words[focus] : words[j]} → ${direction === "out" ? words[j] : words[focus]}: ${fmt(value)}`),
        ),
      );
    }
  });
  const labels = words.map((word, i) =>
    s("text", { x: x(i), y: middle + 4, "text-anchor": "middle", class: i === focus ? "focus" : null }, word),
  );
  return s(
    "svg",
    { class: "arcs", viewBox: `0 0 ${width} ${middle * 2}`, width, height: middle * 2, role: "img", "aria-label": label },
    s("text", { x: 10, y: 14, class: "caption" }, above),
    s("text", { x: 10, y: middle * 2 - 6, class: "caption" }, below),
    paths,
    labels,
  );
}
