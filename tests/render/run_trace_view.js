// Runs qkv's trace view script (src/qkv/render/static/trace.js) in node, without a browser: a stand-in
// implements the few DOM calls the script makes. Reads {"script": ..., "views": [payload JSON text, ...]} on
// stdin, builds one bare view per payload (with its heatmap table), runs the script once, then shows every
// layer and head each view's menus offer (options not disabled) and prints what the heatmap cells say, as JSON.
"use strict";
const vm = require("vm");

const SELECTOR = /^([a-z]*)(?:\.([\w-]+))?(?:\[([\w-]+)=([\w-]+)\])?$/;

class Element {
  constructor(tag, namespace) {
    this.tagName = tag;
    this.namespaceURI = namespace;
    this.attributes = {};
    this.children = [];
    this.listeners = {};
    this.style = {};
    this.className = "";
    this.textContent = "";
    this.value = "";
    this.title = "";
    const classes = new Set();
    this.classList = { add: (name) => classes.add(name), remove: (name) => classes.delete(name) };
  }
  setAttribute(name, value) { this.attributes[name] = String(value); }
  getAttribute(name) { return name in this.attributes ? this.attributes[name] : null; }
  removeAttribute(name) { delete this.attributes[name]; }
  appendChild(child) { this.children.push(child); return child; }
  removeChild(child) { this.children.splice(this.children.indexOf(child), 1); return child; }
  get firstChild() { return this.children[0] || null; }
  addEventListener(type, listener) { (this.listeners[type] = this.listeners[type] || []).push(listener); }
  fire(type) { (this.listeners[type] || []).forEach((listener) => listener()); }
  descendants() { return this.children.flatMap((child) => [child, ...child.descendants()]); }
  matches(selector) {
    const [, tag, cls, attribute, value] = SELECTOR.exec(selector);
    return (!tag || this.tagName === tag) &&
      (!cls || this.className.split(" ").includes(cls)) &&
      (!attribute || this.getAttribute(attribute) === value);
  }
  querySelectorAll(selector) { return this.descendants().filter((element) => element.matches(selector)); }
  querySelector(selector) { return this.querySelectorAll(selector)[0] || null; }
}

const HTML = "http://www.w3.org/1999/xhtml", SVG = "http://www.w3.org/2000/svg";

function child(parent, tag, role, namespace) {
  const element = parent.appendChild(new Element(tag, namespace || HTML));
  if (role) { element.setAttribute("data-role", role); }
  return element;
}

function bareView(page, payload) {
  const root = child(page, "div");
  root.className = "qkv-trace";
  child(root, "script", "data").textContent = payload;
  child(root, "select", "layer");
  child(root, "select", "head");
  child(root, "span", "metrics");
  child(root, "span", "lines");
  child(root, "svg", "arrows", SVG);
  child(root, "table", "heatmap");
  return root;
}

function cells(root) {
  return root.querySelectorAll("td").map((cell) => Number(cell.title.split(": ").pop()));
}

function levels(root) {  // how strongly each cell is shaded: the alpha of its rgba(var(--qkv-cell), alpha)
  return root.querySelectorAll("td").map((cell) => Number(/([0-9.]+)\)$/.exec(cell.style.background)[1]));
}

const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const page = new Element("body", HTML);
const roots = input.views.map((payload) => bareView(page, payload));
const document = {
  querySelectorAll: (selector) => page.querySelectorAll(selector),
  createElement: (tag) => new Element(tag, HTML),
  createElementNS: (namespace, tag) => new Element(tag, namespace),
};
vm.runInNewContext(input.script, { document, atob });
const first = roots.map(cells);  // what each view shows before anyone touches its menus

const result = roots.map((root, index) => {
  const layerMenu = root.querySelector("select[data-role=layer]");
  const headMenu = root.querySelector("select[data-role=head]");
  const shown = [], offered = [];
  layerMenu.children.forEach((layerOption) => {
    if (layerOption.disabled) { return; }
    layerMenu.value = layerOption.value;
    layerMenu.fire("change");
    headMenu.children.forEach((headOption) => {
      if (headOption.disabled) { return; }
      headMenu.value = headOption.value;
      headMenu.fire("change");
      const [layer, head] = [Number(layerOption.value), Number(headOption.value)];
      offered.push([layer, head]);
      const metrics = root.querySelector("[data-role=metrics]").textContent;
      shown.push({ layer, head, cells: cells(root), levels: levels(root), metrics });
    });
  });
  return { ready: root.getAttribute("data-ready") === "1", first: first[index], offered, shown };
});
process.stdout.write(JSON.stringify(result));
