// The layer × head grid of canvas thumbnails (the explorer's Inspect and Training, the self-contained trace view):
// hover previews, click or Enter locks, arrow keys move (one tab stop: a roving tabindex), optional colouring and
// sorting by a per-head metric.

import { clear, fmt, h } from "./dom.js";
import { css, drawBytes, viridis } from "./heatmap.js";

export class HeadGrid {
  /**
   * container: the element to fill. onPreview(cell | null): a head is hovered or focused (null: none is).
   * onLock(cell): a head is clicked or Enter is pressed. label(cell): its accessible name. maxSide: the
   * largest side of a thumbnail in CSS pixels (it shrinks to fit many heads in a row).
   */
  constructor(container, { onPreview, onLock, label, ariaLabel, maxSide = 44 }) {
    this.container = container;
    this.onPreview = onPreview || (() => {});
    this.onLock = onLock || (() => {});
    this.label = label;
    this.ariaLabel = ariaLabel;
    this.maxSide = maxSide;
    this.cells = []; // in display order: {layer, index, head, element, canvas}
    this.active = 0;
    this.locked = null;
    this.columns = 1;
  }

  /**
   * layers: the model's layer numbers; heads: H; thumbs: {size, data: Uint8Array of (L, H, n, n)}, or
   * draw(canvas, cell) to draw each thumbnail itself; metric: {name, values (L × H)} or null, colouring each
   * cell; sortBy: true to order the cells by it.
   */
  render({ layers, heads, thumbs = null, draw = null, metric = null, sortBy = false, locked = null }) {
    const grid = h("div", { class: `head-grid${sortBy && metric ? " sorted" : ""}`, role: "grid", "aria-label": this.ariaLabel });
    let order = [];
    layers.forEach((layer, index) => {
      for (let head = 0; head < heads; head++) order.push({ layer, index, head });
    });
    let low = 0;
    let high = 1;
    if (metric) {
      const all = metric.values.flat();
      low = Math.min(...all);
      high = Math.max(...all);
      if (sortBy) order.sort((a, b) => metric.values[b.index][b.head] - metric.values[a.index][a.head]);
    }
    this.columns = heads;
    this.cells = [];
    const side = `${Math.max(22, Math.min(this.maxSide, Math.floor(600 / heads) - 8))}px`;
    for (let start = 0; start < order.length; start += heads) {
      const row = h("div", { role: "row" });
      if (!(sortBy && metric)) row.append(h("span", { class: "row-label", "aria-hidden": "true" }, `L${order[start].layer}`));
      for (const cell of order.slice(start, start + heads)) {
        const canvas = h("canvas", { "aria-hidden": "true" });
        canvas.style.width = side;
        canvas.style.height = side;
        if (draw) draw(canvas, cell);
        else drawBytes(canvas, thumbs.data, (cell.index * heads + cell.head) * thumbs.size ** 2, thumbs.size);
        const value = metric ? metric.values[cell.index][cell.head] : null;
        const element = h(
          "div",
          {
            role: "gridcell",
            tabindex: "-1",
            "aria-selected": "false",
            "aria-label": this.label(cell, value),
            title: this.label(cell, value),
            "data-layer": cell.layer,
            "data-head": cell.head,
          },
          canvas,
        );
        if (metric) {
          const bar = h("span", { class: "bar", "aria-hidden": "true" });
          bar.style.background = css(viridis(high > low ? (value - low) / (high - low) : 0.5));
          element.append(bar);
        }
        if (sortBy && metric) element.append(h("span", { class: "cell-label", "aria-hidden": "true" }, `${cell.layer}·${cell.head}`));
        cell.element = element;
        cell.canvas = canvas;
        const position = this.cells.length;
        element.addEventListener("mouseenter", () => this.preview(position));
        element.addEventListener("mouseleave", () => this.preview(null));
        element.addEventListener("click", () => this.lock(position));
        element.addEventListener("focus", () => {
          this.setActive(position);
          this.preview(position);
        });
        this.cells.push(cell);
        row.append(element);
      }
      grid.append(row);
    }
    grid.addEventListener("keydown", (event) => this.key(event));
    grid.addEventListener("focusout", (event) => {
      if (!grid.contains(event.relatedTarget)) this.preview(null);
    });
    clear(this.container).append(grid);
    this.grid = grid;
    const start = locked ? this.find(locked.layer, locked.head) : 0;
    this.setActive(start >= 0 ? start : 0);
    if (locked) this.markLocked(locked.layer, locked.head);
    return metric ? { low, high } : null;
  }

  /** Redraw the thumbnails only (Training plays frames through the same grid). */
  redraw(thumbs, heads) {
    const n = thumbs.size;
    for (const cell of this.cells) drawBytes(cell.canvas, thumbs.data, (cell.index * heads + cell.head) * n * n, n);
  }

  find(layer, head) {
    return this.cells.findIndex((c) => c.layer === layer && c.head === head);
  }

  setActive(position) {
    this.cells.forEach((cell, i) => cell.element.setAttribute("tabindex", i === position ? "0" : "-1"));
    this.active = position;
  }

  preview(position) {
    for (const cell of this.cells) cell.element.classList.remove("preview");
    if (position === null) {
      this.onPreview(null);
      return;
    }
    this.cells[position].element.classList.add("preview");
    this.onPreview(this.cells[position]);
  }

  markLocked(layer, head) {
    for (const cell of this.cells) {
      const on = cell.layer === layer && cell.head === head;
      cell.element.setAttribute("aria-selected", String(on));
    }
    this.locked = { layer, head };
  }

  lock(position) {
    const cell = this.cells[position];
    this.setActive(position);
    this.markLocked(cell.layer, cell.head);
    this.onLock(cell);
  }

  key(event) {
    const last = this.cells.length - 1;
    const moves = {
      ArrowRight: 1,
      ArrowLeft: -1,
      ArrowDown: this.columns,
      ArrowUp: -this.columns,
      Home: -Infinity,
      End: Infinity,
    };
    if (event.key in moves) {
      event.preventDefault();
      const target = Math.max(0, Math.min(last, this.active + moves[event.key]));
      this.setActive(target);
      this.cells[target].element.focus();
    } else if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      this.lock(this.active);
    }
  }
}

/** The legend line for a coloured grid. */
export function legendText(name, range) {
  return range ? `${name}: ${fmt(range.low, 2)} … ${fmt(range.high, 2)}` : "";
}
