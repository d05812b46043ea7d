// Training: the loss curve of a run beside its layer × head grid, played over the steps at which
// `qkv train --watch` kept an attention snapshot.

import { api, base64ToBytes, clearError, showError } from "./api.js";
import { $, clear, fmt, h } from "./dom.js";
import { s } from "./svg.js";
import { HeadGrid } from "./grid.js";
import { t } from "./i18n.js";
import { getState, setState } from "./state.js";

let record = null; // the API's answer, traces' thumbnails decoded
let loaded = null;
let grid = null;
let player = null;
let stepX = null; // step → x on the loss curve

export const trainingView = {
  init(models) {
    const select = clear($("training-run"));
    const runs = models.models.filter((m) => m.name.startsWith("run:"));
    for (const run of runs) select.append(h("option", { value: run.name.slice(4) }, run.name.slice(4)));
    if (!runs.length) {
      $("training-status").textContent = t("training.no_runs");
      $("training-form").querySelector("button").disabled = true;
    }
    $("training-form").addEventListener("submit", (event) => {
      event.preventDefault();
      setState({ run: select.value, frame: null });
      this.show(getState());
    });
    $("training-frame").addEventListener("input", () => {
      stop();
      frame(Number($("training-frame").value));
    });
    $("training-play").addEventListener("click", () => (player ? stop() : play()));
  },

  async show(state) {
    if (state.run) $("training-run").value = state.run;
    if (!state.run) return;
    if (loaded !== state.run) {
      stop();
      $("training-status").textContent = t("training.loading");
      try {
        record = await api.training(state.run);
      } catch (error) {
        $("training-status").textContent = "";
        showError(error);
        return;
      }
      clearError();
      loaded = state.run;
      for (const trace of record.traces) trace.bytes = base64ToBytes(trace.thumbs.data);
      $("training-status").textContent = t("training.loaded", {
        steps: record.steps.length ? record.steps[record.steps.length - 1] : 0,
        snapshots: record.traces.length,
      });
      grid = null;
    }
    $("training-result").hidden = false;
    drawLoss();
    const empty = !record.traces.length;
    $("training-empty").hidden = !empty;
    $("training-player").hidden = empty;
    if (empty) {
      $("training-empty").textContent = t("training.empty", { run: state.run });
      return;
    }
    $("training-frame").max = String(record.traces.length - 1);
    const index = Math.max(0, Math.min(record.traces.length - 1, Number(state.frame) || 0));
    frame(index);
  },
};

function drawLoss() {
  const svg = clear($("training-loss"));
  stepX = null;
  const width = 460;
  const height = 280;
  const pad = { left: 44, right: 12, top: 12, bottom: 30 };
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const { steps, loss } = record;
  const val = record.val_loss || [];
  if (!steps.length) {
    $("training-loss-caption").textContent = t("training.no_loss");
    return;
  }
  // Loops, not Math.min(...values): a long run's tens of thousands of points overflow the argument list.
  let [low, high] = [Infinity, -Infinity];
  for (const v of [loss, val].flat()) {
    if (v === null || v === undefined) continue;
    low = Math.min(low, v);
    high = Math.max(high, v);
  }
  // The axis spans the snapshots too: the first is the untrained model's, at step 0, before any loss.
  const snapshots = record.traces.map((trace) => trace.step);
  const first = Math.min(steps[0], ...snapshots.slice(0, 1));
  const last = Math.max(steps[steps.length - 1], ...snapshots.slice(-1));
  const x = (step) => pad.left + ((step - first) / (last - first || 1)) * (width - pad.left - pad.right);
  const y = (v) => pad.top + (1 - (v - low) / (high - low || 1)) * (height - pad.top - pad.bottom);
  svg.append(
    s("line", { x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom, class: "axis" }),
    s("line", { x1: pad.left, y1: pad.top, x2: pad.left, y2: height - pad.bottom, class: "axis" }),
    s("text", { x: pad.left - 4, y: pad.top + 8, "text-anchor": "end" }, fmt(high, 2)),
    s("text", { x: pad.left - 4, y: height - pad.bottom, "text-anchor": "end" }, fmt(low, 2)),
    s("text", { x: pad.left, y: height - 8 }, String(first)),
    s("text", { x: width - pad.right, y: height - 8, "text-anchor": "end" }, String(last)),
    s("text", { x: (pad.left + width - pad.right) / 2, y: height - 8, "text-anchor": "middle" }, t("training.step_axis")),
    s("text", { x: 12, y: (pad.top + height - pad.bottom) / 2, transform: `rotate(-90 12 ${(pad.top + height - pad.bottom) / 2})`, "text-anchor": "middle" }, t("training.loss_axis")),
    s("polyline", { class: "train", points: steps.map((step, i) => `${x(step)},${y(loss[i])}`).join(" ") }),
  );
  val.forEach((v, i) => {
    if (v !== null && v !== undefined) svg.append(s("circle", { class: "val", cx: x(steps[i]), cy: y(v), r: 3 }));
  });
  svg.append(s("line", { id: "training-marker", class: "marker", x1: 0, x2: 0, y1: pad.top, y2: height - pad.bottom, visibility: "hidden" }));
  svg.dataset.first = first;
  svg.dataset.last = last;
  svg.setAttribute("aria-label", t("training.loss_label", { first: fmt(loss[0], 2), last: fmt(loss[loss.length - 1], 2), steps: last }));
  $("training-loss-caption").textContent = t(record.traces.length ? "training.loss_caption" : "training.loss_caption_alone");
  stepX = x;
}

function frame(index) {
  const trace = record.traces[index];
  if (!trace) return;
  $("training-frame").value = String(index);
  $("training-frame-value").textContent = t("training.frame", { step: trace.step, index: index + 1, count: record.traces.length });
  setState({ frame: index });
  $("training-text").textContent = t("training.text", { text: trace.tokens.join("") });
  const layers = Array.from({ length: trace.layers }, (_, i) => i);
  const thumbs = { size: trace.thumbs.size, data: trace.bytes };
  if (!grid || grid.shape !== `${trace.layers}x${trace.heads}x${trace.thumbs.size}`) {
    grid = new HeadGrid($("training-grid"), {
      maxSide: 132, // a snapshot is the whole view: larger thumbnails than Inspect's show a head's pattern
      ariaLabel: t("training.grid_label"),
      label: (cell) => t("inspect.cell", { layer: cell.layer, head: cell.head }),
    });
    grid.render({ layers, heads: trace.heads, thumbs });
    grid.shape = `${trace.layers}x${trace.heads}x${trace.thumbs.size}`;
  } else {
    grid.redraw(thumbs, trace.heads);
  }
  const marker = document.getElementById("training-marker");
  if (marker && stepX) {
    marker.setAttribute("x1", stepX(trace.step));
    marker.setAttribute("x2", stepX(trace.step));
    marker.setAttribute("visibility", "visible");
  }
}

function play() {
  $("training-play").textContent = t("training.pause");
  let index = Number($("training-frame").value);
  if (index >= record.traces.length - 1) index = -1;
  player = setInterval(() => {
    index += 1;
    if (index >= record.traces.length) return stop();
    frame(index);
  }, 500);
}

function stop() {
  if (player) clearInterval(player);
  player = null;
  $("training-play").textContent = t("training.play");
}
