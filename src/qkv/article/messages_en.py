"""The tour's texts in English (the keys are those of :mod:`qkv.article.messages_es`)."""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    # -- the header ----------------------------------------------------------------------------------------
    "tour.title": "qkv tour — self-attention in three parts on real vectors, and what the article left out",
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
    "part2.title": "Part 2 — unit keys: relevance = k_a · k_b, divided by the row's sum",
    "part2.source": (
        "Keys come from MiniLM's first layer: head {head} of {heads}, K = {width} numbers per key, each divided "
        "by its length (the article's unit keys k)."
    ),
    "part2.choice": (
        "Why head {head}: all {heads} heads were computed now, and in this one riley ⇒ dog outweighs dog ⇒ riley "
        "most (weights {there} and {back} after Part 3's final link). Part 4 shows every head."
    ),
    "part2.inputs": (
        "The layer reads each word as LayerNorm(embedding + token type), of length ≈ {norm} (the raw "
        "embedding's: ≈ {raw}); no positions yet. Values stay Part 1's meanings, the raw embeddings."
    ),
    "part2.pair": "riley ⇒ dog: k_riley · k_dog = {there}   dog ⇒ riley: k_dog · k_riley = {back}",
    "part2.same": "The same both ways, for the dot product is symmetric",
    "part2.different": "Different",
    "part2.symmetric": "{verdict}: over the whole sentence, max |r[a, b] − r[b, a]| = {gap}.",
    "part2.closest": (
        "Closest to riley's key: {riley_best} ({riley_value}); closest to dog's: {dog_best} ({dog_value})."
    ),
    "part2.positive": (
        "In this head every relevance is ≥ 0 (lowest {low}), so dividing a row by its sum gives a proper "
        "weighted average."
    ),
    "part2.range": (
        "Dot products of unit vectors lie in [-1, 1], not [0, 1]: {negatives} of the {total} relevances here are "
        "negative."
    ),
    "part2.row_head": "  riley's weights, its relevances divided by their sum:",
    "part2.divided": (
        "riley gives dog {there} and dog gives riley {back}: they differ only through the row sums "
        "({riley_sum} and {dog_sum}), not through anything riley or dog asks for."
    ),
    "part2.new_value": "The new v_riley, a weighted sum of values: its similarity to dog {before} → {after}.",
    "part2.raw": (
        "The article's literal keys (raw embeddings through all {width} numbers, unit length) show why it says "
        "[0, 1] too soon: k_riley · k_dog = {there};"
    ),
    "part2.raw_range": "  unit keys' dot products lie in [-1, 1]: {negatives} of the {total} relevances are negative;",
    "part2.lowest": "  riley's lowest is riley · {word} = {value};",
    "part2.keeps": "  divided by riley's row sum ({total}), riley keeps {own} and {word} gets {weight};",
    "part2.keeps_subtracted": (
        "  divided by riley's row sum ({total}), riley keeps {own} and {word} gets {weight}: its value is subtracted;"
    ),
    "part2.scale": "  those weights sum to {total} but are {times}× larger than the relevances' own scale;",
    "part2.raises": "  normalise() raises ArticleMathError on such rows unless told strict=False.",
    "part2.wrong": (
        "What is wrong: relevance is symmetric (riley ⇒ dog = dog ⇒ riley = {value}), but riley ⇒ dog should be "
        "strong and dog ⇒ riley weak: that Riley is a dog matters more to riley than the dog's name to dog."
    ),
    # -- Part 3 --------------------------------------------------------------------------------------------
    "part3.title": "Part 3 — queries: relevance = q_a · k_b, new_V = normalise(Q @ K.T) @ V",
    "part3.source": (
        "Queries come from head {head}, Part 2's head (where riley ⇒ dog outweighs dog ⇒ riley most); its keys "
        "now keep their own lengths, as the model uses them."
    ),
    "part3.pair": "riley ⇒ dog: q_riley · k_dog = {there}   dog ⇒ riley: q_dog · k_riley = {back}",
    "part3.asymmetric": "Asymmetric",
    "part3.equal": "Equal here",
    "part3.ranks": (
        "dog ranks {riley_rank} of {rows} among riley's scores; riley ranks {dog_rank} among dog's (dog's highest: "
        "{dog_best}, {dog_value})."
    ),
    "part3.gap": "{verdict}: over the sentence, max |r[a, b] − r[b, a]| = {gap}.",
    "part3.range": "Queries are not unit vectors: relevances range over [{low}, {high}].",
    "part3.holds": "The article's sum-normalisation holds on this sentence.",
    "part3.anyway": (
        "Divided by their row sums anyway (strict=False): riley ⇒ dog {there}, dog ⇒ riley {back}, riley ⇒ riley {own}."
    ),
    "part3.raises": (
        "But the article's normalise(Q @ K.T) raises ArticleMathError: {negative} of {total} relevances are "
        "negative (in {negative_rows} of {rows} rows), {flipped} rows sum below 0 (dividing would flip every "
        "sign) and {near_zero} to nearly 0."
    ),
    "part3.error": "ArticleMathError: {message}",
    # -- the final link ------------------------------------------------------------------------------------
    "link.title": "The final link — Part 3 + softmax + 1/√K is qkv.attend",
    "link.formula": "softmax(Q @ K.T · {scale}) @ V, with K = {width} and 1/√K = {scale}:",
    "link.rows": "  every weight is positive and every row sums to 1: max |row sum − 1| = {gap}",
    "link.difference": "  max |part3_with_softmax − qkv.attend| ({name}): {difference}",
    "link.exact_outputs": "exact path, outputs",
    "link.exact_weights": "exact path, weights",
    "link.fused_outputs": "fused path, outputs",
    "link.checked": "  checked against qkv.attend's exact and fused paths: equal within {tolerance}.",
    "link.attends": "riley now attends most to: {attended} (uniform would be {uniform}).",
    "link.payoff": (
        "riley ⇒ dog weighs {there}, dog ⇒ riley only {back} (dog looks most at {dog_best}, {dog_value}): the "
        "query lets riley take dog's meaning without dog taking riley's."
    ),
    "link.no_payoff": (
        "riley ⇒ dog weighs {there}, dog ⇒ riley {back} (dog looks most at {dog_best}, {dog_value}): here the "
        "queries do not favour riley ⇒ dog."
    ),
    "link.new_value": "The new v_riley's similarity to dog: {before} → {after}.",
    "link.raw": (
        "On the article's literal vectors (raw embeddings through all {width} numbers) the same formula gives "
        "riley ⇒ dog {there} and dog ⇒ riley {back}, no weight above {top} (uniform: {uniform}): raw embeddings "
        "are {times} times shorter than what the layer reads, so their scores barely differ."
    ),
    "link.why": (
        "Why 1/√K: a dot product of K terms, each of spread 1, has spread √K; dividing by √K keeps scores at the "
        "same spread whatever the width, so softmax does not drift to all-or-nothing."
    ),
    "link.spread": "  Score spread (std) here: {unscaled} unscaled, {scaled} scaled.",
    "link.figure": "Part 3 with softmax and 1/√K, head {head}: where each word looks (arc width = weight).",
    # -- Part 4 --------------------------------------------------------------------------------------------
    "left.title": "Part 4 — what the article left out",
    "left.intro": "The article closes by naming details it skipped. Each one, measured on the same sentence:",
    "left.list": "  softmax · heads · the 1/√K scale · positions · stacked layers.",
    "soft.title": "4.1 Softmax instead of dividing by the sum",
    "soft.scores": "Part 3's scores for riley (head {head}): highest to {best} ({high}), lowest to {worst} ({low}).",
    "soft.summed": "  divided by their sum ({total}): {best} gets {high}, {worst} gets {low}{verdict}",
    "soft.reversed": " — the order is turned around.",
    "soft.negative": " — a negative weight: that value is subtracted.",
    "soft.fine": "; here no harm done.",
    "soft.softmaxed": (
        "  softmax(score / √K), Part 3's final link: {best} gets {high}, {worst} gets {low} — all positive."
    ),
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
        "The words enter as that layer reads them, as in Parts 2–3: embedding + token type, normalised by the "
        "model's LayerNorm (length ≈ {norm} instead of {raw}); now the values are projected too; no positions yet."
    ),
    "heads.riley": "The word riley attends to most, head by head (head, word, weight):",
    "heads.cell": "{head:>2} {word:>11} {weight}",
    "heads.distinct": (
        "{distinct} different words come first across the {heads} heads: each head learned its own relevance."
    ),
    "heads.article": "Head {head} is the one Parts 2–3 used: riley ⇒ dog {there}, dog ⇒ riley {back}.",
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
        "Softmax over {keys} such scores, as the mean largest weight / mean entropy in bits (an even spread is "
        "{even} / {bits} bits; one word taking everything, 1.00 / 0.00):"
    ),
    "scale.softmax_row": "  K = {width:>4}: unscaled {max_u} / {bits_u} bits   scaled {max_s} / {bits_s} bits",
    "scale.real": (
        "MiniLM's first layer on the sentence (K = {head_width}), averaged over its heads and words: unscaled, "
        "the largest weight is {max_u} and the entropy {bits_u} bits; scaled, {max_s} and {bits_s} bits (an even "
        "spread: {even} and {bits} bits)."
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
