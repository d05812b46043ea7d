// Small DOM helpers shared by the views: element builders, number formatting, downloads.

export const SVG_NS = "http://www.w3.org/2000/svg";

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

/** An HTML element: h("button", {class: "x", onclick: f}, "label", child, ...). */
export function h(tag, attrs, ...children) {
  const element = assign(document.createElement(tag), attrs);
  for (const child of children.flat()) if (child !== null && child !== undefined) element.append(child);
  return element;
}

/** An SVG element (attributes as given, e.g. "stroke-width"). */
export function s(tag, attrs, ...children) {
  const element = assign(document.createElementNS(SVG_NS, tag), attrs);
  for (const child of children.flat()) if (child !== null && child !== undefined) element.append(child);
  return element;
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

/** Save a Blob (or a URL) as a file. */
export function download(blobOrUrl, filename) {
  const url = typeof blobOrUrl === "string" ? blobOrUrl : URL.createObjectURL(blobOrUrl);
  const link = h("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  if (typeof blobOrUrl !== "string") setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Calls fn at most once per `wait` ms, with the latest arguments (trailing call). */
export function debounce(fn, wait) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
}
