// The interactive view of a qkv attention trace (qkv.render.html.trace_fragment): plain ES5, no libraries,
// no URL (the SVG namespace is read from the <svg> element the HTML parser made). It is inlined into each
// view as a classic script, so it works from a file:// page and in a notebook. Every <div class="qkv-trace">
// on the page that is not yet set up gets its menus, lines and heatmap, built from the JSON beside it: with
// several views on one page, each script sets up the views above it that are still bare.
(function () {
  "use strict";
  var roots = document.querySelectorAll("div.qkv-trace"), n;
  for (n = 0; n < roots.length; n++) {
    if (!roots[n].getAttribute("data-ready")) { setUp(roots[n]); }
  }

  function setUp(root) {
    root.setAttribute("data-ready", "1");
    var data = JSON.parse(root.querySelector("script[data-role=data]").textContent);
    var raw = atob(data.weights), bytes = new Uint8Array(raw.length), i;
    for (i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    var view = new DataView(bytes.buffer);
    var L = data.layers.length, H = data.heads, T = data.tokens.length;
    var layerMenu = root.querySelector("select[data-role=layer]");
    var headMenu = root.querySelector("select[data-role=head]");
    var metricsBox = root.querySelector("[data-role=metrics]");
    var svg = root.querySelector("svg[data-role=arrows]"), NS = svg.namespaceURI;
    var table = root.querySelector("table[data-role=heatmap]");

    function weight(l, h, t, s) { return view.getFloat32(4 * (((l * H + h) * T + t) * T + s), true); }
    function matrix(l, h) {
      var rows = [], t, s, k, v;
      for (t = 0; t < T; t++) {
        var row = [];
        for (s = 0; s < T; s++) {
          if (h >= 0) {
            v = weight(l, h, t, s);
          } else {
            v = 0;
            for (k = 0; k < H; k++) { v += weight(l, k, t, s); }
            v /= H;
          }
          row.push(v);
        }
        rows.push(row);
      }
      return rows;
    }
    function option(menu, value, label) {
      var o = document.createElement("option"); o.value = String(value); o.textContent = label; menu.appendChild(o);
    }
    function make(name, attributes, parent) {
      var e = document.createElementNS(NS, name), key;
      for (key in attributes) {
        if (Object.prototype.hasOwnProperty.call(attributes, key)) { e.setAttribute(key, attributes[key]); }
      }
      parent.appendChild(e);
      return e;
    }

    data.layers.forEach(function (layer, index) { option(layerMenu, index, String(layer)); });
    option(headMenu, -1, "mean of " + H);
    for (i = 0; i < H; i++) { option(headMenu, i, String(i)); }
    layerMenu.value = String(data.layer);
    headMenu.value = String(data.head);

    var ROW = 20, widest = 0;
    data.tokens.forEach(function (token) { widest = Math.max(widest, token.length); });
    var labelWidth = Math.min(160, 14 + 7.5 * widest), gap = 150;
    var leftX = labelWidth, rightX = labelWidth + gap, width = rightX + labelWidth + 44, height = T * ROW + 8;
    svg.setAttribute("width", width); svg.setAttribute("height", height);
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    var lineGroup = make("g", {}, svg), lefts = [], rights = [], leftValues = [], rightValues = [];
    data.tokens.forEach(function (token, t) {
      var y = 4 + ROW * t + ROW / 2, special = data.special[t] ? "qkv-special" : "";
      var left = make("text", {x: leftX - 8, y: y, "text-anchor": "end", "class": special}, svg);
      left.textContent = token; lefts.push(left);
      var right = make("text", {x: rightX + 8, y: y, "class": special}, svg);
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
      var l = Number(layerMenu.value), h = Number(headMenu.value), t, s, largest = 0;
      current = matrix(l, h);
      for (t = 0; t < T; t++) { for (s = 0; s < T; s++) { largest = Math.max(largest, current[t][s]); } }
      largest = largest || 1;
      while (lineGroup.firstChild) { lineGroup.removeChild(lineGroup.firstChild); }
      lines = [];
      for (t = 0; t < T; t++) {
        for (s = 0; s < T; s++) {
          var w = current[t][s];
          if (w < 0.01 * largest) { continue; }
          var line = make("line", {
            x1: leftX, y1: 4 + ROW * t + ROW / 2, x2: rightX, y2: 4 + ROW * s + ROW / 2,
            "stroke-width": (0.4 + 5 * w).toFixed(2), "stroke-opacity": (0.08 + 0.92 * w / largest).toFixed(3)
          }, lineGroup);
          line.setAttribute("data-from", t); line.setAttribute("data-to", s);
          lines.push(line);
        }
      }
      if (table) {
        var cells = table.querySelectorAll("td");
        for (t = 0; t < T; t++) {
          for (s = 0; s < T; s++) {
            var cell = cells[t * T + s], v = current[t][s];
            cell.style.background = "rgba(192, 57, 43, " + (v / largest).toFixed(3) + ")";
            cell.title = data.tokens[t] + " \u21d2 " + data.tokens[s] + ": " + v.toFixed(3);
          }
        }
      }
      var m = data.metrics[l][h < 0 ? H : h];
      metricsBox.textContent = "entropy " + m[0].toFixed(2) + " bits \u00b7 mean distance " + m[1].toFixed(1) +
        " tokens \u00b7 asymmetry \u2016A \u2212 A\u1d40\u2016 " + m[2].toFixed(2) + " (" + m[3].toFixed(2) +
        " of its maximum) \u00b7 sink share " + m[4].toFixed(2) + " (to " + data.sinkNames + ")";
      unfocus();
    }
    function focus(kind, index) {
      unfocus();
      root.classList.add("qkv-focus");
      lines.forEach(function (line) {
        var on = Number(line.getAttribute(kind === "from" ? "data-from" : "data-to")) === index;
        if (on) { line.setAttribute("class", "qkv-on"); }
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
      lines.forEach(function (line) { line.removeAttribute("class"); });
      data.tokens.forEach(function (token, t) {
        var special = data.special[t] ? "qkv-special" : "";
        lefts[t].setAttribute("class", special); rights[t].setAttribute("class", special);
        leftValues[t].textContent = ""; rightValues[t].textContent = "";
        if (rowHeads[t]) { rowHeads[t].className = ""; columnHeads[t].className = "qkv-column"; }
      });
    }
    layerMenu.addEventListener("change", draw);
    headMenu.addEventListener("change", draw);
    draw();
  }
}());
