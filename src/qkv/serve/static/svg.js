// SVG elements for the explorer's own figures (the lines of the self-contained view take the namespace of the
// <svg> they draw in instead: lines.js).

import { inNamespace } from "./dom.js";

export const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element (attributes as given, e.g. "stroke-width"). */
export function s(tag, attrs, ...children) {
  return inNamespace(SVG_NS, tag, attrs, ...children);
}
