// A hovered token's lines, in SVG: the tokens twice, in two columns (who looks, at whom), and from one token a
// line to each token it attends to (hovered on the left) or from each token that attends to it (on the right),
// as wide as the weight. Used by the explorer's Inspect view and by the self-contained trace view, which also
// asks for an overview (the strongest lines of the whole head while no token is hovered), grey lines to the sink
// tokens and the weights written beside the tokens.

import { clear, inNamespace } from "./dom.js";

export const LINE_WIDTH = 10; // px of line for a weight of 1
export const PER_TOKEN = 32; // at most this many lines for one token

/** The top `count` entries of `values` as [index, value] pairs, largest first. */
export function top(values, count) {
  const order = Array.from({ length: values.length }, (_, i) => i);
  order.sort((a, b) => values[b] - values[a]);
  return order.slice(0, count).map((i) => [i, values[i]]);
}

/** A label cut to `length` characters, with an ellipsis when cut. */
export function short(label, length = 18) {
  return label.length > length ? label.slice(0, length - 1) + "…" : label;
}

/** The token a pointer event is over: {index, side} of its <text data-index data-side>, or null. */
export function tokenAt(event) {
  const target = event.target && event.target.closest ? event.target.closest("text[data-index]") : null;
  return target ? { index: Number(target.getAttribute("data-index")), side: target.getAttribute("data-side") } : null;
}

export class TokenLines {
  /**
   * svg: the <svg> to fill. left, right: where the query tokens end and the key tokens start (px); row: px
   * per token; labelSpace: px for the key tokens' labels; overview: lines drawn at most while no token is hovered (0: none); sinks: a flag per token, whose
   * lines are drawn grey (class "sink"); values: write each weight beside the other column's tokens.
   */
  constructor(svg, { left = 160, right = 300, row = 16, labelSpace = 150, overview = 0, sinks = null, values = false } = {}) {
    this.svg = svg;
    this.s = (tag, attrs, ...children) => inNamespace(svg.namespaceURI, tag, attrs, ...children); // in the <svg>'s namespace
    Object.assign(this, { left, right, row, labelSpace, overview, sinks, values });
    this.top = 28; // px above the first token: the column headings
    this.lines = [];
    this.texts = { left: [], right: [] };
    this.valueTexts = { left: [], right: [] };
    this.marked = [];
    this.weights = null;
    this.rows = 0;
    this.cols = 0;
    this.scale = 1;
    this.overviewShown = { kept: 0, total: 0 };
  }

  /** Write the tokens (labels, a special flag each) and the column headings {from, to}; no lines yet. */
  setTokens(labels, special, headings) {
    const svg = clear(this.svg);
    const width = this.right + this.labelSpace + (this.values ? 44 : 0);
    const height = labels.length * this.row + this.top;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    if (headings) {
      svg.append(
        this.s("text", { x: this.left, y: 14, "text-anchor": "end", class: "head" }, headings.from),
        this.s("text", { x: this.right, y: 14, class: "head" }, headings.to),
      );
    }
    this.group = this.s("g", { class: "lines-group" });
    this.lines = [];
    this.ensure(PER_TOKEN);
    svg.append(this.group);
    this.texts = { left: [], right: [] };
    this.valueTexts = { left: [], right: [] };
    this.marked = [];
    const fragment = document.createDocumentFragment();
    labels.forEach((label, i) => {
      const y = this.top + i * this.row + 11;
      const kind = special && special[i] ? "special" : null;
      const left = this.s("text", { x: this.left, y, "text-anchor": "end", "data-side": "left", "data-index": i, class: kind }, short(label));
      const right = this.s("text", { x: this.right, y, "data-side": "right", "data-index": i, class: kind }, short(label));
      this.texts.left.push(left);
      this.texts.right.push(right);
      fragment.append(left, right);
      if (this.values) {
        const before = this.s("text", { x: 2, y, class: "value" });
        const after = this.s("text", { x: width - 2, y, "text-anchor": "end", class: "value" });
        this.valueTexts.left.push(before);
        this.valueTexts.right.push(after);
        fragment.append(before, after);
      }
    });
    svg.append(fragment);
  }

  /** At least `count` line elements, hidden until drawn. */
  ensure(count) {
    while (this.lines.length < count) {
      const line = this.s("line", { visibility: "hidden" });
      this.lines.push(line);
      this.group.append(line);
    }
  }

  /** The matrix the lines show: `weights` (rows × cols, row-major); `scale` shades the overview's lines. */
  setWeights(weights, rows, cols, scale = 1) {
    Object.assign(this, { weights, rows, cols, scale });
  }

  yOf(i) {
    return this.top + i * this.row + 7;
  }

  /** Line `i` from token `from` (left) to token `to` (right), `weight` wide; extra: attributes of its own. */
  drawLine(i, from, to, weight, width, extra) {
    const line = this.lines[i];
    line.setAttribute("x1", this.left + 6);
    line.setAttribute("y1", this.yOf(from));
    line.setAttribute("x2", this.right - 6);
    line.setAttribute("y2", this.yOf(to));
    line.setAttribute("stroke-width", String(width));
    line.setAttribute("data-from", from);
    line.setAttribute("data-to", to);
    line.setAttribute("data-weight", String(weight));
    const sink = this.sinks && (this.sinks[from] || this.sinks[to]);
    line.setAttribute("class", [extra.kind, sink ? "sink" : ""].filter(Boolean).join(" "));
    if (extra.opacity === undefined) line.removeAttribute("stroke-opacity");
    else line.setAttribute("stroke-opacity", extra.opacity);
    line.setAttribute("visibility", "visible");
  }

  hideFrom(count) {
    for (let i = count; i < this.lines.length; i++) this.lines[i].setAttribute("visibility", "hidden");
  }

  /**
   * Show token `index` on `side` ("left": the tokens it attends to; "right": those that attend to it) and
   * return {outgoing, incoming}: its strongest [token, weight] pairs both ways, largest first. An index out of
   * range shows the overview (or nothing), whose {kept, total} lines go to this.overviewShown, and returns null.
   */
  highlight(index, side) {
    for (const element of this.marked) element.classList.remove("hovered", "target", "source");
    this.marked = [];
    for (const text of [...this.valueTexts.left, ...this.valueTexts.right]) text.textContent = "";
    if (!this.weights || index < 0 || index >= this.rows) {
      this.overviewShown = this.showOverview();
      return null;
    }
    const { weights, rows: T, cols: S } = this;
    const row = weights.subarray(index * S, (index + 1) * S); // whom token `index` attends to
    const column = new Float32Array(T); // who attends to token `index`
    if (index < S) for (let q = 0; q < T; q++) column[q] = weights[q * S + index];
    const outgoing = top(row, PER_TOKEN);
    const incoming = top(column, PER_TOKEN);
    const drawn = side === "left" ? outgoing.map(([to, w]) => [index, to, w]) : incoming.map(([from, w]) => [from, index, w]);
    drawn.forEach(([from, to, weight], i) => this.drawLine(i, from, to, weight, weight * LINE_WIDTH, {}));
    this.hideFrom(drawn.length);
    const own = this.texts[side][index];
    own.classList.add("hovered");
    this.marked.push(own);
    // Highlighted: up to 8 tokens it gives more than an even share to, and up to 8 that give it more than theirs.
    for (const [to, weight] of outgoing.slice(0, 8)) {
      if (weight <= 1 / S) break;
      this.texts.right[to].classList.add("target");
      this.marked.push(this.texts.right[to]);
    }
    for (const [from, weight] of incoming.slice(0, 8)) {
      if (weight <= 1 / S) break;
      this.texts.left[from].classList.add("source");
      this.marked.push(this.texts.left[from]);
    }
    if (this.values) {
      const numbers = side === "left" ? row : column;
      const texts = side === "left" ? this.valueTexts.right : this.valueTexts.left;
      numbers.forEach((w, other) => {
        if (texts[other]) texts[other].textContent = w >= 0.005 ? w.toFixed(2) : "";
      });
    }
    return { outgoing, incoming };
  }

  /**
   * While no token is hovered: the `overview` strongest lines of the whole matrix of at least 1% of its scale,
   * faint and thin as their weight against the scale (sinks' half as strong). Returns {kept, total}.
   */
  showOverview() {
    if (!this.overview || !this.weights) {
      this.hideFrom(0);
      return { kept: 0, total: 0 };
    }
    const { weights, rows: T, cols: S, scale } = this;
    const candidates = [];
    for (let t = 0; t < T; t++) {
      for (let k = 0; k < S; k++) if (weights[t * S + k] >= 0.01 * scale) candidates.push(t * S + k);
    }
    candidates.sort((a, b) => weights[b] - weights[a]);
    const kept = candidates.slice(0, this.overview).reverse(); // the strongest drawn last, on top
    this.ensure(kept.length);
    kept.forEach((cell, i) => {
      const w = weights[cell];
      const from = Math.floor(cell / S);
      const to = cell % S;
      const sink = this.sinks && (this.sinks[from] || this.sinks[to]);
      const opacity = (0.08 + 0.92 * Math.min(1, w / scale) * (sink ? 0.5 : 1)).toFixed(3);
      this.drawLine(i, from, to, w, (0.4 + (w * LINE_WIDTH) / 2).toFixed(2), { kind: "overview", opacity });
    });
    this.hideFrom(kept.length);
    return { kept: kept.length, total: candidates.length };
  }
}
