// Small DOM helpers shared by the views (the explorer's and the self-contained trace view): element builders,
// number formatting. No namespace is named here: an SVG element is made in the namespace of an <svg> the page
// already holds (the explorer's svg.js names the SVG namespace for its own figures), so a self-contained page
// that inlines this module carries no address of any kind.

function assign(element, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") element.textContent = value;
    else if (name === "class") element.setAttribute("class", value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name === "style") Object.assign(element.style, value);
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  return element;
}

function fill(element, attrs, children) {
  assign(element, attrs);
  for (const child of children.flat()) if (child !== null && child !== undefined) element.append(child);
  return element;
}

/** An HTML element: h("button", {class: "x", onclick: f}, "label", child, ...). */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An element of `namespace` (e.g. an <svg>'s namespaceURI), attributes as given (e.g. "stroke-width"). */
export function inNamespace(namespace, tag, attrs, ...children) {
  return fill(document.createElementNS(namespace, tag), attrs, children);
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

export function $(id) {
  return document.getElementById(id);
}

/** A number for people: fixed decimals, a true minus sign. */
export function fmt(x, digits = 3) {
  if (!Number.isFinite(x)) return String(x);
  const text = x.toFixed(digits);
  return text.startsWith("-") ? "−" + text.slice(1) : text;
}

/** A small difference in scientific notation (1.2e-9). */
export function sci(x) {
  if (x === 0) return "0";
  return Number.isFinite(x) ? x.toExponential(1) : String(x);
}

/** Calls fn at most once per `wait` ms, with the latest arguments (trailing call). */
export function debounce(fn, wait) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
}
