// The interactive view of a qkv attention trace (qkv.render.html.trace_fragment): plain ES5, no libraries,
// no URL (the SVG namespace is read from the <svg> element the HTML parser made). It is inlined into each
// view as a classic script, so it works from a file:// page and in a notebook. Every <div class="qkv-trace">
// on the page that is not yet set up gets its menus, lines and heatmap, built from the JSON beside it: with
// several views on one page, each script sets up the views above it that are still bare. The view holds the
// matrices listed in data.held (every head of some layers, or one head), float32 or uint8 (data.encoding);
// the menus offer only what it holds. Heads are shaded against their scale: the 99th percentile of their
// weights outside the sink columns (and the causal future), as qkv.render.scale computes it.
(function () {
  "use strict";
  var roots = document.querySelectorAll("div.qkv-trace"), n;
  for (n = 0; n < roots.length; n++) {
    if (!roots[n].getAttribute("data-ready")) { setUp(roots[n]); }
  }

  function setUp(root) {
    root.setAttribute("data-ready", "1");
    root.classList.add("qkv-live");
    var data = JSON.parse(root.querySelector("script[data-role=data]").textContent);
    var raw = atob(data.weights), bytes = new Uint8Array(raw.length), i;
    for (i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    var view = new DataView(bytes.buffer), float = data.encoding === "float32";
    var L = data.layers.length, H = data.heads, T = data.tokens.length, PERCENTILE = 99;
    var layerMenu = root.querySelector("select[data-role=layer]");
    var headMenu = root.querySelector("select[data-role=head]");
    var metricsBox = root.querySelector("[data-role=metrics]");
    var linesNote = root.querySelector("[data-role=lines]");
    var svg = root.querySelector("svg[data-role=arrows]"), NS = svg.namespaceURI;
    var table = root.querySelector("table[data-role=heatmap]");
    var slot = {};  // "layer,head" -> which matrix of the data holds it
    data.held.forEach(function (pair, index) { slot[pair[0] + "," + pair[1]] = index; });

    function held(l, h) {
      if (slot.hasOwnProperty(l + "," + h)) { return true; }
      if (h >= 0) { return false; }
      for (var k = 0; k < H; k++) { if (!slot.hasOwnProperty(l + "," + k)) { return false; } }
      return true;  // the mean, from every head of the layer
    }
    function weight(m, t, s) {
      var at = (m * T + t) * T + s;
      return float ? view.getFloat32(4 * at, true) : bytes[at] / 255;
    }
    function matrix(l, h) {
      var rows = [], t, s, k, v, own = slot[l + "," + h];
      for (t = 0; t < T; t++) {
        var row = [];
        for (s = 0; s < T; s++) {
          if (own !== undefined) {
            v = weight(own, t, s);
          } else {
            v = 0;
            for (k = 0; k < H; k++) { v += weight(slot[l + "," + k], t, s); }
            v /= H;
          }
          row.push(v);
        }
        rows.push(row);
      }
      return rows;
    }
    function scaleOf(rows) {
      var cells = [], t, s;
      for (t = 0; t < T; t++) {
        for (s = 0; s < (data.causal ? t + 1 : T); s++) {
          if (!data.sinks[s]) { cells.push(rows[t][s]); }
        }
      }
      if (!cells.length) { return 1; }
      cells.sort(function (a, b) { return a - b; });
      return Math.max(cells[Math.max(1, Math.ceil(PERCENTILE / 100 * cells.length)) - 1], 1e-30);
    }
    function option(menu, value, label, enabled) {
      var o = document.createElement("option");
      o.value = String(value); o.textContent = enabled ? label : label + " (not in this view)"; o.disabled = !enabled;
      menu.appendChild(o);
    }
    function make(name, attributes, parent) {
      var e = document.createElementNS(NS, name), key;
      for (key in attributes) {
        if (Object.prototype.hasOwnProperty.call(attributes, key)) { e.setAttribute(key, attributes[key]); }
      }
      parent.appendChild(e);
      return e;
    }
    function fillHeads(l, wanted) {
      while (headMenu.firstChild) { headMenu.removeChild(headMenu.firstChild); }
      option(headMenu, -1, "mean of " + H, held(l, -1));
      for (var k = 0; k < H; k++) { option(headMenu, k, String(k), held(l, k)); }
      var pick = held(l, wanted) ? wanted : -2;
      for (k = -1; pick === -2 && k < H; k++) { if (held(l, k)) { pick = k; } }
      headMenu.value = String(pick);
    }

    data.layers.forEach(function (layer, index) {
      var any = false;
      for (var k = -1; k < H; k++) { any = any || held(index, k); }
      option(layerMenu, index, String(layer), any);
    });
    layerMenu.value = String(data.layer);
    fillHeads(data.layer, data.head);

    var ROW = 20, widest = 0;
    data.tokens.forEach(function (token) { widest = Math.max(widest, token.length); });
    var labelWidth = Math.min(160, 14 + 7.5 * widest), gap = 150;
    var leftX = labelWidth, rightX = labelWidth + gap, width = rightX + labelWidth + 44, height = T * ROW + 8;
    svg.setAttribute("width", width); svg.setAttribute("height", height);
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    var lineGroup = make("g", {}, svg), lefts = [], rights = [], leftValues = [], rightValues = [];
    function tokenClass(t) { return data.special[t] || data.sinks[t] ? "qkv-special" : ""; }
    data.tokens.forEach(function (token, t) {
      var y = 4 + ROW * t + ROW / 2;
      var left = make("text", {x: leftX - 8, y: y, "text-anchor": "end", "class": tokenClass(t)}, svg);
      left.textContent = token; lefts.push(left);
      var right = make("text", {x: rightX + 8, y: y, "class": tokenClass(t)}, svg);
      right.textContent = token; rights.push(right);
      leftValues.push(make("text", {x: 2, y: y, "class": "qkv-value"}, svg));
      rightValues.push(make("text", {x: width - 40, y: y, "class": "qkv-value"}, svg));
      left.addEventListener("mouseenter", function () { focus("from", t); });
      right.addEventListener("mouseenter", function () { focus("to", t); });
      left.addEventListener("mouseleave", unfocus);
      right.addEventListener("mouseleave", unfocus);
    });

    var current = [], lines = [], rowHeads = [], columnHeads = [];
    if (table) {
      var head = document.createElement("tr");
      head.appendChild(document.createElement("th"));
      data.tokens.forEach(function (token, s) {
        var th = document.createElement("th"); th.className = "qkv-column"; th.textContent = token;
        th.addEventListener("mouseenter", function () { focus("to", s); });
        th.addEventListener("mouseleave", unfocus);
        head.appendChild(th); columnHeads.push(th);
      });
      table.appendChild(head);
      data.tokens.forEach(function (token, t) {
        var tr = document.createElement("tr"), th = document.createElement("th"), s;
        th.textContent = token; th.style.textAlign = "right";
        th.addEventListener("mouseenter", function () { focus("from", t); });
        th.addEventListener("mouseleave", unfocus);
        tr.appendChild(th); rowHeads.push(th);
        for (s = 0; s < T; s++) { tr.appendChild(document.createElement("td")); }
        table.appendChild(tr);
      });
    }

    function draw() {
      var l = Number(layerMenu.value), h = Number(headMenu.value), t, s;
      if (!held(l, h)) { return; }
      current = matrix(l, h);
      var scale = scaleOf(current), candidates = [];
      for (t = 0; t < T; t++) {
        for (s = 0; s < T; s++) {
          if (current[t][s] >= 0.01 * scale) { candidates.push([current[t][s], t, s]); }
        }
      }
      candidates.sort(function (a, b) { return b[0] - a[0]; });
      var kept = candidates.slice(0, data.maxLines);
      while (lineGroup.firstChild) { lineGroup.removeChild(lineGroup.firstChild); }
      lines = [];
      kept.reverse().forEach(function (entry) {  // the strongest drawn last, on top
        var w = entry[0], from = entry[1], to = entry[2], sink = data.sinks[to] || data.sinks[from];
        var line = make("line", {
          x1: leftX, y1: 4 + ROW * from + ROW / 2, x2: rightX, y2: 4 + ROW * to + ROW / 2,
          "stroke-width": (0.4 + (sink ? 2 : 5) * w).toFixed(2),
          "stroke-opacity": (0.08 + 0.92 * Math.min(1, w / scale) * (sink ? 0.5 : 1)).toFixed(3)
        }, lineGroup);
        line.setAttribute("data-from", from); line.setAttribute("data-to", to);
        line.setAttribute("data-sink", sink ? "1" : "");
        lines.push(line);
      });
      linesNote.textContent = kept.length < candidates.length ?
        "Showing the " + kept.length + " strongest of " + candidates.length + " lines." : "";
      if (table) {
        var cells = table.querySelectorAll("td");
        for (t = 0; t < T; t++) {
          for (s = 0; s < T; s++) {
            var cell = cells[t * T + s], v = current[t][s];
            var level = data.sinks[s] ? Math.min(1, v) : Math.min(1, v / scale);
            cell.style.background = "rgba(var(" + (data.sinks[s] ? "--qkv-sink-cell" : "--qkv-cell") + "), " +
              level.toFixed(3) + ")";
            cell.title = data.tokens[t] + " \u21d2 " + data.tokens[s] + ": " + v.toFixed(3);
          }
        }
      }
      var m = data.metrics[l][h < 0 ? H : h];
      metricsBox.textContent = "entropy " + m[0].toFixed(2) + " bits \u00b7 mean distance " + m[1].toFixed(1) +
        " tokens \u00b7 asymmetry \u2016A \u2212 A\u1d40\u2016 " + m[2].toFixed(2) + " (" + m[3].toFixed(2) +
        " of its maximum) \u00b7 " +
        (data.sinkNames ? "sink share " + m[4].toFixed(2) + " (to " + data.sinkNames + ")" : "no sink tokens");
      unfocus();
    }
    function focus(kind, index) {
      unfocus();
      root.classList.add("qkv-focus");
      lines.forEach(function (line) {
        var on = Number(line.getAttribute(kind === "from" ? "data-from" : "data-to")) === index;
        if (on) { line.setAttribute("class", "qkv-on" + (line.getAttribute("data-sink") ? " qkv-sink" : "")); }
      });
      (kind === "from" ? lefts : rights)[index].setAttribute("class", "qkv-active");
      var heads = kind === "from" ? rowHeads : columnHeads;
      if (heads[index]) { heads[index].className += " qkv-active"; }
      for (var other = 0; other < T; other++) {
        var w = kind === "from" ? current[index][other] : current[other][index];
        (kind === "from" ? rightValues : leftValues)[other].textContent = w >= 0.005 ? w.toFixed(2) : "";
      }
    }
    function unfocus() {
      root.classList.remove("qkv-focus");
      lines.forEach(function (line) { line.setAttribute("class", line.getAttribute("data-sink") ? "qkv-sink" : ""); });
      data.tokens.forEach(function (token, t) {
        lefts[t].setAttribute("class", tokenClass(t)); rights[t].setAttribute("class", tokenClass(t));
        leftValues[t].textContent = ""; rightValues[t].textContent = "";
        if (rowHeads[t]) { rowHeads[t].className = ""; columnHeads[t].className = "qkv-column"; }
      });
    }
    layerMenu.addEventListener("change", function () {
      fillHeads(Number(layerMenu.value), Number(headMenu.value));
      draw();
    });
    headMenu.addEventListener("change", draw);
    draw();
  }
}());
