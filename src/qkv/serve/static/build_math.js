// The Build view's arithmetic on plain arrays of float64 (JavaScript numbers): the article's ladder in code.
// Matrices are arrays of rows. Every function is pure; build.js draws what they return.

export function dot(a, b) {
  let total = 0;
  for (let i = 0; i < a.length; i++) total += a[i] * b[i];
  return total;
}

export function norm(a) {
  return Math.sqrt(dot(a, a));
}

export function cosine(a, b) {
  return dot(a, b) / (norm(a) * norm(b));
}

/** The article's Part 1: ratio · a + (1 − ratio) · b. */
export function mix(a, b, ratio) {
  return a.map((x, i) => ratio * x + (1 - ratio) * b[i]);
}

/** (T, T): each word keeps `ratio` of itself and shares the rest evenly with the others (Part 1, every pair). */
export function fixedRatioWeights(n, ratio) {
  const others = n > 1 ? (1 - ratio) / (n - 1) : 0;
  return Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? ratio : others)));
}

/** A Bᵀ: (T, K) × (S, K) → (T, S). */
export function timesTransposed(a, b) {
  return a.map((row) => b.map((other) => dot(row, other)));
}

/** A B: (T, S) × (S, D) → (T, D). */
export function times(a, b) {
  const width = b[0].length;
  return a.map((row) => {
    const out = new Array(width).fill(0);
    row.forEach((weight, s) => {
      const source = b[s];
      for (let d = 0; d < width; d++) out[d] += weight * source[d];
    });
    return out;
  });
}

export function scale(matrix, factor) {
  return matrix.map((row) => row.map((x) => x * factor));
}

export function rowSums(matrix) {
  return matrix.map((row) => row.reduce((a, b) => a + b, 0));
}

/** The article's normalisation: each row divided by its own sum (whatever its sign). */
export function divideBySum(matrix) {
  return matrix.map((row) => {
    const total = row.reduce((a, b) => a + b, 0);
    return row.map((x) => x / total);
  });
}

/** Softmax along each row, shifted by the row's largest score (the same numbers, no overflow). */
export function softmax(matrix) {
  return matrix.map((row) => {
    const top = Math.max(...row);
    const exps = row.map((x) => Math.exp(x - top));
    const total = exps.reduce((a, b) => a + b, 0);
    return exps.map((x) => x / total);
  });
}

/** Columns [start, end) of every row: one head's slice. */
export function columns(matrix, start, end) {
  return matrix.map((row) => row.slice(start, end));
}

/** Rows side by side: [(T, a), (T, b), …] → (T, a + b + …). */
export function concatenate(parts) {
  return parts[0].map((_, t) => parts.flatMap((part) => part[t]));
}

export function add(a, b) {
  return a.map((row, t) => row.map((x, d) => x + b[t][d]));
}

export function transpose(matrix) {
  return matrix[0].map((_, j) => matrix.map((row) => row[j]));
}

export function maxAbsDifference(a, b) {
  let worst = 0;
  a.forEach((row, i) => row.forEach((x, j) => (worst = Math.max(worst, Math.abs(x - b[i][j])))));
  return worst;
}

/** max |M − Mᵀ|: 0 for a symmetric matrix. */
export function asymmetryGap(matrix) {
  return maxAbsDifference(matrix, transpose(matrix));
}

export function standardDeviation(matrix) {
  const flat = matrix.flat();
  const mean = flat.reduce((a, b) => a + b, 0) / flat.length;
  return Math.sqrt(flat.reduce((a, b) => a + (b - mean) ** 2, 0) / (flat.length - 1));
}

/** −Σ w log2 w of one row (0 · log 0 = 0). */
export function entropyBits(row) {
  return -row.reduce((total, w) => (w > 0 ? total + w * Math.log2(w) : total), 0);
}

export function mean(numbers) {
  return numbers.reduce((a, b) => a + b, 0) / numbers.length;
}

export function argmax(row) {
  return row.reduce((best, x, i) => (x > row[best] ? i : best), 0);
}

export function argmin(row) {
  return row.reduce((best, x, i) => (x < row[best] ? i : best), 0);
}

/**
 * The whole ladder once: scores Q Kᵀ, optionally scaled by 1/√K, normalised by the sum or by softmax, per head.
 * Returns {scores, weights, output}; with heads > 1, scores and weights are lists of one matrix per head and
 * output is the heads' outputs side by side.
 */
export function attention({ queries, keys, values, normalise = "softmax", scaled = true, heads = 1 }) {
  const width = queries[0].length;
  const headWidth = width / heads;
  const valueWidth = values[0].length / heads;
  const perHead = [];
  for (let h = 0; h < heads; h++) {
    const q = heads === 1 ? queries : columns(queries, h * headWidth, (h + 1) * headWidth);
    const k = heads === 1 ? keys : columns(keys, h * headWidth, (h + 1) * headWidth);
    const v = heads === 1 ? values : columns(values, h * valueWidth, (h + 1) * valueWidth);
    let scores = timesTransposed(q, k); // (T, S)
    if (scaled) scores = scale(scores, 1 / Math.sqrt(headWidth));
    const weights = normalise === "sum" ? divideBySum(scores) : softmax(scores); // (T, S)
    perHead.push({ scores, weights, output: times(weights, v) }); // output (T, D / heads)
  }
  if (heads === 1) return perHead[0];
  return {
    scores: perHead.map((p) => p.scores),
    weights: perHead.map((p) => p.weights),
    output: concatenate(perHead.map((p) => p.output)),
  };
}

/** Rows reordered: out[i] = matrix[order[i]]. */
export function permuteRows(matrix, order) {
  return order.map((i) => matrix[i]);
}

/** The inverse of a permutation. */
export function inverse(order) {
  const back = new Array(order.length);
  order.forEach((source, i) => (back[source] = i));
  return back;
}
