"""The tour's texts in English (the keys are those of :mod:`qkv.article.messages_es`)."""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    # -- the header ----------------------------------------------------------------------------------------
    "tour.title": "qkv tour — self-attention built in three parts on real vectors, then what the article left out",
    "tour.sentence": "sentence: {sentence}",
    "tour.words": "words:    {words}",
    "tour.vectors": (
        "Vectors are MiniLM's (width D = {width}). Words cut into pieces get the mean of their pieces' vectors: "
        "{pieces}."
    ),
    # -- Part 1 --------------------------------------------------------------------------------------------
    "part1.title": "Part 1 — mixing two values at a fixed ratio",
    "part1.rule": "v_riley ← {ratio} · v_riley + {rest} · v_dog",
    "part1.similarity_head": "cosine similarity of riley to:   before    after",
    "part1.similarity_row": "  {word:<30} {before:>7}  {after:>7}",
    "part1.closer": "riley now carries some of dog's meaning.",
    "part1.not_closer": "riley did not move towards dog.",
    "part1.every_pair": "Mixing every pair at the same ratio fails: the ratio cannot tell which words matter.",
    "part1.same_weight": "  riley gives dog weight {dog}, the same as 'so' {so} and every other word;",
    "part1.reaches_only": "  riley's similarity to dog reaches only {every} (mixing dog alone: {alone}),",
    "part1.blur": "  and the words blur together: mean similarity between words {before} → {after}.",
    "part1.fixed_row": "  The weights are fixed in advance, whatever the words; riley's row:",
    "part1.need": "We need a measure of how much each word should take from each other word.",
    # -- Part 2 --------------------------------------------------------------------------------------------
    "part2.title": "Part 2 — unit keys: relevance = k_a · k_b, normalised, weights a sum of values",
    "part2.pair": "riley ⇒ dog: k_riley · k_dog = {there}   dog ⇒ riley: k_dog · k_riley = {back}   {verdict}.",
    "part2.same": "the same",
    "part2.different": "different",
    "part2.symmetric": "The dot product is symmetric: over the whole sentence, max |r[a, b] − r[b, a]| = {gap}.",
    "part2.range": (
        "Dot products of unit vectors lie in [-1, 1], not [0, 1]: {negatives} of the {total} relevances here are "
        "negative;"
    ),
    "part2.lowest": "  riley's lowest is riley · {word} = {value}.",
    "part2.row_head": "  riley's relevances, k_riley · k for every word:",
    "part2.divide": "Sum-normalising riley's row divides by its sum, {total}:",
    "part2.keeps": "  riley keeps weight {own}, {word} gets {weight};",
    "part2.keeps_subtracted": "  riley keeps weight {own}, {word} gets {weight} (its value is subtracted);",
    "part2.scale": "  the weights sum to {total} but are {times}× larger than the relevances' own scale.",
    "part2.sentence": (
        "  Over the sentence: {negative} of {rows} rows have negative relevances, {flipped} sum below 0, "
        "{near_zero} sum to nearly 0."
    ),
    "part2.raises": "  normalise() raises ArticleMathError on such rows unless told strict=False.",
    "part2.new_value": "The new v_riley is a weighted sum of values; its similarity to dog: {before} → {after}.",
    "part2.wrong": "What is wrong: relevance is symmetric, but riley → dog matters more than dog → riley.",
    # -- Part 3 --------------------------------------------------------------------------------------------
    "part3.title": "Part 3 — queries: relevance = q_a · k_b, new_V = normalise(Q @ K.T) @ V",
    "part3.pair": "riley ⇒ dog: q_riley · k_dog = {there}   dog ⇒ riley: q_dog · k_riley = {back}   {verdict}.",
    "part3.asymmetric": "asymmetric",
    "part3.equal": "equal here",
    "part3.gap": "Over the sentence, max |r[a, b] − r[b, a]| = {gap}.",
    "part3.range": "Queries are not unit vectors: relevances range over [{low}, {high}];",
    "part3.sums": "  riley's row sums to {riley}, dog's to {dog}.",
    "part3.holds": "The article's sum-normalisation holds on this sentence.",
    "part3.raises": "So normalise(Q @ K.T) raises ArticleMathError: {negative} of {total} relevances are negative,",
    "part3.flips": (
        "  {flipped} of {rows} rows sum below 0 (dividing would flip every weight's sign), {near_zero} sum to nearly 0."
    ),
    "part3.error": "ArticleMathError: {message}",
    # -- the final link ------------------------------------------------------------------------------------
    "link.title": "The final link — Part 3 + softmax + 1/√K is qkv.attend",
    "link.formula": "softmax(Q @ K.T · {scale}) @ V, with K = {width} and 1/√K = {scale}:",
    "link.rows": "  softmax weights are all positive and every row sums to 1: max |row sum − 1| = {gap}",
    "link.difference": "  max |part3_with_softmax − qkv.attend| ({name}): {difference}",
    "link.exact_outputs": "exact path, outputs",
    "link.exact_weights": "exact path, weights",
    "link.fused_outputs": "fused path, outputs",
    "link.checked": "  checked: equal within {tolerance}.",
    "link.attends": "riley now attends most to: {attended} (uniform would be {uniform}).",
    "link.flat": (
        "These weights are nearly even: the article's raw embeddings are short. Part 4 feeds the words in as "
        "MiniLM reads them."
    ),
    "link.why": "Why 1/√K: a dot product of K terms, each of spread 1, has spread √K; dividing by √K keeps",
    "link.why_more": "  scores at the same spread whatever the width, so softmax does not drift to all-or-nothing.",
    "link.spread": "  Score spread (std) here: {unscaled} unscaled, {scaled} scaled.",
    "link.figure": "Part 3 with softmax and 1/√K: where each word looks (arc width = weight).",
    # -- Part 4 --------------------------------------------------------------------------------------------
    "left.title": "Part 4 — what the article left out",
    "left.intro": "The article closes by naming details it skipped. Each one, measured on the same sentence:",
    "left.list": "  softmax · heads · the 1/√K scale · positions · stacked layers.",
    "soft.title": "4.1 Softmax instead of dividing by the sum",
    "soft.scores": "Part 3's scores for riley: highest to {best} ({high}), lowest to {worst} ({low}).",
    "soft.summed": (
        "  divided by their sum ({total}): {best} gets {high}, {worst} gets {low} — the order is turned around."
    ),
    "soft.softmaxed": "  softmax, exp(score) / Σ exp:    {best} gets {high}, {worst} gets {low} — all positive.",
    "soft.sentence": (
        "Over the sentence, dividing by the sum puts the most weight on the lowest score in {reversed} of {rows} "
        "rows and gives negative weights in {negative}; softmax puts it on the highest score in {kept} of {rows}."
    ),
    "soft.why": (
        "  exp is positive and grows with the score, so softmax keeps the order, never divides by a sum near 0, "
        "and always sums to 1."
    ),
    "heads.title": "4.2 Heads: one layer, many ways of looking",
    "heads.split": (
        "MiniLM's first layer cuts its queries, keys and values (D = {width}) into {heads} heads of K = {head_width}; "
        "each head attends on its own."
    ),
    "heads.inputs": (
        "From here on the words enter as that layer reads them: embedding + token type, normalised by the "
        "model's LayerNorm (length ≈ {norm} instead of {raw}), values projected too; no positions yet."
    ),
    "heads.riley": "The word riley attends to most, head by head:",
    "heads.cell": "{head:>2} {word:>11} {weight}",
    "heads.distinct": (
        "{distinct} different words come first across the {heads} heads: each head learned its own relevance."
    ),
    "heads.concat": (
        "The layer puts the heads' outputs side by side again: {heads} × {head_width} = {width} numbers per word."
    ),
    "heads.checked": "  checked: the same as qkv.attend with {heads} heads, within {tolerance}.",
    "heads.figure": (
        "MiniLM's first layer on the article's words, its {heads} heads side by side (row: a word, column: where "
        "it looks)."
    ),
    "heads.sharpest": "Head {head}, the surest of its choice for riley ({word} {weight}): where each word looks.",
    "scale.title": "4.3 Why scores are divided by √K",
    "scale.variance": "q · k adds up K products. Random q and k with components of variance 1:",
    "scale.variance_row": "  K = {width:>4}: var(q · k) = {variance:>6}   (÷ K: {ratio})   var(q · k / √K) = {scaled}",
    "scale.softmax": (
        "Softmax over {keys} such scores (mean largest weight / entropy; an even spread is {even} / {bits} bits):"
    ),
    "scale.softmax_row": "  K = {width:>4}: unscaled {max_u} / {bits_u} bits   scaled {max_s} / {bits_s} bits",
    "scale.real": (
        "MiniLM's first layer on the sentence (K = {head_width}): unscaled {max_u} / {bits_u} bits, scaled "
        "{max_s} / {bits_s} bits (even: {even} / {bits} bits)."
    ),
    "scale.why": (
        "  Unscaled, wider heads push softmax towards one word only, and a one-hot softmax passes almost no "
        "gradient back."
    ),
    "pos.title": "4.4 Positions: attention alone does not know the word order",
    "pos.shuffle": "Shuffle the words: {shuffled}",
    "pos.without": (
        "Without positions the outputs are the same rows, shuffled: max |difference| after putting them back = "
        "{difference} (outputs reach {size})."
    ),
    "pos.with": (
        "With MiniLM's position vectors added to the embeddings, the shuffled words get new outputs: max "
        "|difference| = {difference}."
    ),
    "pos.bag": "Attention alone reads a bag of words; a position vector in each word makes order count.",
    "stack.title": "4.5 Stacking: layer after layer",
    "stack.layers": (
        "One layer lets each word take from the others once; MiniLM stacks {layers}, each reading the last one's "
        "outputs."
    ),
    "stack.model": (
        "The whole model on the sentence ({tokens} tokens, [CLS] and [SEP] included), token {token}, heads averaged:"
    ),
    "stack.header": "  layer   to [CLS]/[SEP]   entropy   text tokens it attends to most",
    "stack.row": "  {layer:>5}   {special:>14}   {entropy:>7}   {top}",
    "stack.moves": "Besides itself, its first choice goes from {before} in layer {first} to {after} in layer {last}.",
    "stack.rest": (
        "[CLS] and [SEP] take {low} to {high} of its attention: heads with nothing to do rest their weight there."
    ),
    "stack.figure": "The whole model: {layers} layers × {heads} heads (row: a token, column: where it looks).",
    # -- the figures' own words (qkv.render.figures.FigureText's fields, one key each) -------------------------
    "figure.grid_title": "attention of every head (row: a token; column: the token it attends to)",
    "figure.layer": "layer {layer}",
    "figure.head": "head {head}",
    "figure.mean": "mean of {heads} heads",
    "figure.arcs_title": "layer {layer} · {which}: arc width = weight",
    "figure.scale": "colour: weight ÷ the head's scale, the {percentile}th percentile of its weights outside the sinks",
    "figure.sink_scale": "sink columns ({sinks}): the weight itself",
    "figure.right": "looks right (at a later token)",
    "figure.left": "looks left (at an earlier token)",
    "figure.sink": "to or from a sink ({sinks})",
    "figure.itself": "to itself (dot)",
    "figure.arcs_cut": "the {shown} strongest of {total} arcs of at least {threshold} are drawn",
    "figure.tokens_cut": "tokens {first}…{last} of 0…{final} are shown; arcs to and from the others are left out",
}
