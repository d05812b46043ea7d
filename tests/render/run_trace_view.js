// Runs qkv's trace view script (qkv.render.html.view_script(): trace_view.js and the explorer's modules it
// imports, inlined) in node, without a browser: a stand-in implements the DOM and canvas calls they make. Reads
// {"script": ..., "views": [payload JSON text, ...], "token": t} on stdin, builds one bare view per payload (with
// its grid and heatmap), runs the script once, then shows every layer and head each view's menus offer (options
// not disabled) and prints, as JSON, what each draws: the heatmap's pixels, the metrics line, the grid's
// thumbnails, and the lines drawn while nothing is hovered and while token `t` is hovered on the left.
"use strict";
const vm = require("vm");

const SELECTOR = /^([a-z0-9]*)(?:\.([\w-]+))?(?:\[([\w-]+)(?:=([\w-]+))?\])?$/;

class Element {
  constructor(tag, namespace) {
    this.tagName = tag;
    this.namespaceURI = namespace;
    this.attributes = {};
    this.children = [];
    this.parent = null;
    this.listeners = {};
    this.style = {};
    this.dataset = {};
    this.text = "";
    this.chosen = null;
    this.hidden = false;
    this.open = false;
    this.width = 300;
    this.height = 150;
    const element = this;
    this.classList = {
      add: (...names) => element.setClasses([...element.classes(), ...names]),
      remove: (...names) => element.setClasses(element.classes().filter((name) => !names.includes(name))),
      contains: (name) => element.classes().includes(name),
    };
  }
  classes() { return (this.getAttribute("class") || "").split(" ").filter(Boolean); }
  setClasses(names) { this.setAttribute("class", [...new Set(names)].join(" ")); }
  get className() { return this.getAttribute("class") || ""; }
  set className(value) { this.setAttribute("class", value); }
  get disabled() { return "disabled" in this.attributes; }
  get value() { return this.chosen !== null ? this.chosen : this.getAttribute("value") || ""; }  // an option's: its attribute
  set value(value) { this.chosen = String(value); }
  setAttribute(name, value) { this.attributes[name] = String(value); }
  getAttribute(name) { return name in this.attributes ? this.attributes[name] : null; }
  removeAttribute(name) { delete this.attributes[name]; }
  append(...nodes) {
    for (const node of nodes) {
      if (node instanceof Fragment) { node.children.splice(0).forEach((child) => this.append(child)); }
      else if (node instanceof Element) { node.parent = this; this.children.push(node); }
      else { this.text += String(node); }
    }
  }
  appendChild(node) { this.append(node); return node; }
  replaceChildren(...nodes) { this.children = []; this.text = ""; this.append(...nodes); }
  removeChild(node) { this.children.splice(this.children.indexOf(node), 1); return node; }
  get firstChild() { return this.children[0] || null; }
  get textContent() { return this.text + this.children.map((child) => child.textContent).join(""); }
  set textContent(value) { this.children = []; this.text = String(value); }
  addEventListener(type, listener) { (this.listeners[type] = this.listeners[type] || []).push(listener); }
  fire(type, event) {
    for (let node = this; node; node = node.parent) {
      (node.listeners[type] || []).forEach((listener) => listener(Object.assign({ target: this, preventDefault() {} }, event)));
    }
  }
  descendants() { return this.children.flatMap((child) => [child, ...child.descendants()]); }
  matches(selector) {
    const [, tag, cls, attribute, value] = SELECTOR.exec(selector);
    return (!tag || this.tagName === tag) && (!cls || this.classes().includes(cls)) &&
      (!attribute || (value === undefined ? attribute in this.attributes : this.getAttribute(attribute) === value));
  }
  querySelectorAll(selector) { return this.descendants().filter((element) => element.matches(selector)); }
  querySelector(selector) { return this.querySelectorAll(selector)[0] || null; }
  closest(selector) {
    for (let node = this; node; node = node.parent) { if (node.matches(selector)) { return node; } }
    return null;
  }
  contains(node) { return node === this || this.descendants().includes(node); }
  focus() {}
  scrollIntoView() {}
  getBoundingClientRect() { return { left: 0, top: 0, width: 300, height: 300 }; }
  getContext() {
    const canvas = this;
    return {
      createImageData: (width, height) => ({ width, height, data: new Uint8ClampedArray(width * height * 4) }),
      putImageData: (image) => { canvas.pixels = Array.from(image.data).filter((_, i) => i % 4 !== 3); },
      clearRect() {},
      strokeRect() {},
    };
  }
}

class Fragment extends Element {}

const HTML = "http://www.w3.org/1999/xhtml";

function child(parent, tag, role) {
  const element = parent.appendChild(new Element(tag, HTML));
  if (role) { element.setAttribute("data-role", role); }
  return element;
}

function bareView(page, payload) {
  const root = child(page, "div");
  root.className = "qkv-trace";
  child(root, "script", "data").textContent = payload;
  for (const role of ["layer", "head"]) { child(root, "select", role); }
  for (const role of ["metrics", "hover"]) { child(root, "span", role); }
  child(root, "div", "grid");
  child(root, "p", "grid-help");
  child(child(root, "div", "lines-wrap"), "svg", "lines");
  child(root, "canvas", "heatmap");
  child(root, "canvas", "overlay");
  return root;
}

function linesOf(root) {
  return root.querySelectorAll("line").filter((line) => line.getAttribute("visibility") === "visible").map((line) => ({
    from: Number(line.getAttribute("data-from")),
    to: Number(line.getAttribute("data-to")),
    weight: Number(line.getAttribute("data-weight")),
    width: Number(line.getAttribute("stroke-width")),
    kind: line.getAttribute("class"),
  }));
}

const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const page = new Element("body", HTML);
const roots = input.views.map((payload) => bareView(page, payload));
const document = {
  querySelectorAll: (selector) => page.querySelectorAll(selector),
  createElement: (tag) => new Element(tag, HTML),
  createElementNS: (namespace, tag) => new Element(tag, namespace),
  createDocumentFragment: () => new Fragment("#fragment", HTML),
};
vm.runInNewContext(input.script, { document, atob });

const result = roots.map((root) => {
  const heatmap = root.querySelector("canvas[data-role=heatmap]");
  const first = { pixels: heatmap.pixels, layer: Number(heatmap.getAttribute("data-layer")), head: Number(heatmap.getAttribute("data-head")) };
  const layerMenu = root.querySelector("select[data-role=layer]");
  const headMenu = root.querySelector("select[data-role=head]");
  const svg = root.querySelector("svg[data-role=lines]");
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
      const overview = linesOf(root);
      const token = svg.querySelector(`text[data-index=${input.token}]`);
      token.fire("mouseover");
      const hovered = { lines: linesOf(root), hover: root.querySelector("[data-role=hover]").textContent };
      svg.fire("mouseleave");
      shown.push({
        layer, head, pixels: heatmap.pixels, width: heatmap.width, height: heatmap.height,
        metrics: root.querySelector("[data-role=metrics]").textContent, overview, hovered,
      });
    });
  });
  const grid = root.querySelectorAll("div").filter((cell) => cell.getAttribute("role") === "gridcell").map((cell) => ({
    layer: Number(cell.getAttribute("data-layer")),
    head: Number(cell.getAttribute("data-head")),
    pixels: cell.querySelector("canvas").pixels,
  }));
  return { ready: root.getAttribute("data-ready") === "1", live: root.classList.contains("qkv-live"), first, offered, shown, grid };
});
process.stdout.write(JSON.stringify(result));
