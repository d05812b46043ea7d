"""Los textos del recorrido en español (las claves son las de :mod:`qkv.article.messages_en`)."""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    # -- la cabecera ---------------------------------------------------------------------------------------
    "tour.title": "qkv tour — la autoatención en tres partes con vectores reales, y lo que el artículo dejó fuera",
    "tour.sentence": "frase:    {sentence}",
    "tour.words": "palabras: {words}",
    "tour.vectors": (
        "Los vectores son los de MiniLM (anchura D = {width}). Las palabras partidas en trozos reciben la media "
        "de los vectores de sus trozos: {pieces}."
    ),
    # -- Parte 1 -------------------------------------------------------------------------------------------
    "part1.title": "Parte 1 — mezclar dos valores en una proporción fija",
    "part1.rule": "v_riley ← {ratio} · v_riley + {rest} · v_dog",
    "part1.similarity_head": "similitud coseno de riley con:   antes   después",
    "part1.similarity_row": "  {word:<30} {before:>7}  {after:>7}",
    "part1.closer": "riley lleva ahora parte del significado de dog.",
    "part1.not_closer": "riley no se ha acercado a dog.",
    "part1.every_pair": (
        "Mezclar cada par en la misma proporción no funciona: la proporción no sabe qué palabras importan."
    ),
    "part1.same_weight": "  riley da a dog el peso {dog}, el mismo que a 'so' {so} y a cualquier otra palabra;",
    "part1.reaches_only": "  la similitud de riley con dog llega solo a {every} (mezclando solo dog: {alone}),",
    "part1.blur": "  y las palabras se confunden: similitud media entre palabras {before} → {after}.",
    "part1.fixed_row": "  Los pesos están fijados de antemano, sean cuales sean las palabras; la fila de riley:",
    "part1.need": "Hace falta una medida de cuánto debe tomar cada palabra de cada una de las demás.",
    # -- Parte 2 -------------------------------------------------------------------------------------------
    "part2.title": "Parte 2 — claves unitarias: relevancia = k_a · k_b, normalizada, pondera una suma de valores",
    "part2.pair": "riley ⇒ dog: k_riley · k_dog = {there}   dog ⇒ riley: k_dog · k_riley = {back}   {verdict}.",
    "part2.same": "lo mismo",
    "part2.different": "distinto",
    "part2.symmetric": "El producto escalar es simétrico: en toda la frase, máx |r[a, b] − r[b, a]| = {gap}.",
    "part2.range": (
        "El producto escalar de vectores unitarios cae en [-1, 1], no en [0, 1]: aquí {negatives} de las {total} "
        "relevancias son negativas;"
    ),
    "part2.lowest": "  la más baja de riley es riley · {word} = {value}.",
    "part2.row_head": "  relevancias de riley, k_riley · k para cada palabra:",
    "part2.divide": "Normalizar la fila de riley por su suma es dividir entre {total}:",
    "part2.keeps": "  riley conserva el peso {own}, {word} recibe {weight};",
    "part2.keeps_subtracted": "  riley conserva el peso {own}, {word} recibe {weight} (su valor se resta);",
    "part2.scale": "  los pesos suman {total} pero son {times}× mayores que la escala de las propias relevancias.",
    "part2.sentence": (
        "  En toda la frase: {negative} de {rows} filas tienen relevancias negativas, {flipped} suman menos de 0, "
        "{near_zero} suman casi 0."
    ),
    "part2.raises": "  normalise() lanza ArticleMathError con esas filas salvo que se le pase strict=False.",
    "part2.new_value": "El nuevo v_riley es una suma ponderada de valores; su similitud con dog: {before} → {after}.",
    "part2.wrong": "Lo que falla: la relevancia es simétrica, pero riley → dog importa más que dog → riley.",
    # -- Parte 3 -------------------------------------------------------------------------------------------
    "part3.title": "Parte 3 — consultas: relevancia = q_a · k_b, new_V = normalise(Q @ K.T) @ V",
    "part3.pair": "riley ⇒ dog: q_riley · k_dog = {there}   dog ⇒ riley: q_dog · k_riley = {back}   {verdict}.",
    "part3.asymmetric": "asimétrica",
    "part3.equal": "iguales aquí",
    "part3.gap": "En toda la frase, máx |r[a, b] − r[b, a]| = {gap}.",
    "part3.range": "Las consultas no son vectores unitarios: las relevancias van de {low} a {high};",
    "part3.sums": "  la fila de riley suma {riley}, la de dog {dog}.",
    "part3.holds": "La normalización por la suma del artículo funciona con esta frase.",
    "part3.raises": (
        "Así que normalise(Q @ K.T) lanza ArticleMathError: {negative} de {total} relevancias son negativas,"
    ),
    "part3.flips": (
        "  {flipped} de {rows} filas suman menos de 0 (dividir cambiaría el signo de todos sus pesos), "
        "{near_zero} suman casi 0."
    ),
    "part3.error": "ArticleMathError (mensaje de la biblioteca, en inglés): {message}",
    # -- el eslabón final ----------------------------------------------------------------------------------
    "link.title": "El eslabón final — Parte 3 + softmax + 1/√K es qkv.attend",
    "link.formula": "softmax(Q @ K.T · {scale}) @ V, con K = {width} y 1/√K = {scale}:",
    "link.rows": "  los pesos de softmax son todos positivos y cada fila suma 1: máx |suma − 1| = {gap}",
    "link.difference": "  máx |part3_with_softmax − qkv.attend| ({name}): {difference}",
    "link.exact_outputs": "camino exacto, salidas",
    "link.exact_weights": "camino exacto, pesos",
    "link.fused_outputs": "camino fusionado, salidas",
    "link.checked": "  comprobado: iguales con tolerancia {tolerance}.",
    "link.attends": "riley atiende ahora sobre todo a: {attended} (el reparto uniforme sería {uniform}).",
    "link.flat": (
        "Estos pesos son casi uniformes: los embeddings crudos del artículo son cortos. La Parte 4 da las "
        "palabras tal como las lee MiniLM."
    ),
    "link.why": "Por qué 1/√K: un producto escalar de K términos, cada uno de dispersión 1, tiene dispersión √K;",
    "link.why_more": (
        "  dividir entre √K mantiene la misma dispersión sea cual sea la anchura, y softmax no deriva al todo o nada."
    ),
    "link.spread": "  Dispersión (desviación típica) de las puntuaciones: {unscaled} sin escalar, {scaled} escaladas.",
    "link.figure": "La Parte 3 con softmax y 1/√K: adónde mira cada palabra (grosor del arco = peso).",
    # -- Parte 4 -------------------------------------------------------------------------------------------
    "left.title": "Parte 4 — lo que el artículo dejó fuera",
    "left.intro": "El artículo termina nombrando detalles que se saltó. Cada uno, medido en la misma frase:",
    "left.list": "  softmax · cabezas · la escala 1/√K · posiciones · capas apiladas.",
    "soft.title": "4.1 Softmax en lugar de dividir por la suma",
    "soft.scores": (
        "Puntuaciones de la Parte 3 para riley: la más alta con {best} ({high}), la más baja con {worst} ({low})."
    ),
    "soft.summed": (
        "  divididas por su suma ({total}): {best} recibe {high}, {worst} recibe {low} — el orden queda invertido."
    ),
    "soft.softmaxed": (
        "  softmax, exp(puntuación) / Σ exp:  {best} recibe {high}, {worst} recibe {low} — todos positivos."
    ),
    "soft.sentence": (
        "En toda la frase, dividir por la suma da el mayor peso a la puntuación más baja en {reversed} de {rows} "
        "filas y pesos negativos en {negative}; softmax se lo da a la más alta en {kept} de {rows}."
    ),
    "soft.why": (
        "  exp es positiva y crece con la puntuación: softmax conserva el orden, nunca divide por una suma cercana "
        "a 0 y siempre suma 1."
    ),
    "heads.title": "4.2 Cabezas: una capa, muchas maneras de mirar",
    "heads.split": (
        "La primera capa de MiniLM corta sus consultas, claves y valores (D = {width}) en {heads} cabezas de "
        "K = {head_width}; cada cabeza atiende por su cuenta."
    ),
    "heads.inputs": (
        "A partir de aquí las palabras entran como las lee esa capa: embedding + tipo de token, normalizado por la "
        "LayerNorm del modelo (longitud ≈ {norm} en vez de {raw}), y los valores también proyectados; aún sin "
        "posiciones."
    ),
    "heads.riley": "La palabra a la que más atiende riley, cabeza por cabeza:",
    "heads.cell": "{head:>2} {word:>11} {weight}",
    "heads.distinct": (
        "{distinct} palabras distintas quedan primeras entre las {heads} cabezas: cada cabeza aprendió su propia "
        "relevancia."
    ),
    "heads.concat": (
        "La capa vuelve a poner juntas las salidas de las cabezas: {heads} × {head_width} = {width} números por "
        "palabra."
    ),
    "heads.checked": "  comprobado: lo mismo que qkv.attend con {heads} cabezas, con tolerancia {tolerance}.",
    "heads.figure": (
        "La primera capa de MiniLM sobre las palabras del artículo, sus {heads} cabezas una junto a otra (fila: "
        "una palabra, columna: adónde mira)."
    ),
    "heads.sharpest": (
        "La cabeza {head}, la más segura de su elección para riley ({word} {weight}): adónde mira cada palabra."
    ),
    "scale.title": "4.3 Por qué las puntuaciones se dividen entre √K",
    "scale.variance": "q · k suma K productos. Con q y k aleatorios de componentes de varianza 1:",
    "scale.variance_row": "  K = {width:>4}: var(q · k) = {variance:>6}   (÷ K: {ratio})   var(q · k / √K) = {scaled}",
    "scale.softmax": (
        "Softmax de {keys} puntuaciones así (peso mayor medio / entropía; un reparto uniforme es {even} / {bits} bits):"
    ),
    "scale.softmax_row": "  K = {width:>4}: sin escalar {max_u} / {bits_u} bits   escaladas {max_s} / {bits_s} bits",
    "scale.real": (
        "La primera capa de MiniLM con la frase (K = {head_width}): sin escalar {max_u} / {bits_u} bits, "
        "escaladas {max_s} / {bits_s} bits (uniforme: {even} / {bits} bits)."
    ),
    "scale.why": (
        "  Sin escalar, cuanto más anchas las cabezas más se concentra softmax en una sola palabra, y un softmax "
        "casi one-hot apenas deja pasar gradiente."
    ),
    "pos.title": "4.4 Posiciones: la atención sola no conoce el orden de las palabras",
    "pos.shuffle": "Barajamos las palabras: {shuffled}",
    "pos.without": (
        "Sin posiciones las salidas son las mismas filas, barajadas: máx |diferencia| tras devolverlas a su sitio "
        "= {difference} (las salidas llegan a {size})."
    ),
    "pos.with": (
        "Sumando a los embeddings los vectores de posición de MiniLM, las palabras barajadas dan salidas nuevas: "
        "máx |diferencia| = {difference}."
    ),
    "pos.bag": (
        "La atención sola lee una bolsa de palabras; un vector de posición en cada palabra hace que el orden cuente."
    ),
    "stack.title": "4.5 Apilar: capa tras capa",
    "stack.layers": (
        "Una capa deja que cada palabra tome de las demás una vez; MiniLM apila {layers}, y cada una lee las salidas "
        "de la anterior."
    ),
    "stack.model": (
        "El modelo entero con la frase ({tokens} tokens, con [CLS] y [SEP]), token {token}, media de las cabezas:"
    ),
    "stack.header": "   capa   a [CLS]/[SEP]   entropía   tokens del texto a los que más atiende",
    "stack.row": "  {layer:>5}   {special:>13}   {entropy:>8}   {top}",
    "stack.moves": (
        "Aparte de sí mismo, su primera elección pasa de {before} en la capa {first} a {after} en la capa {last}."
    ),
    "stack.rest": (
        "[CLS] y [SEP] se llevan de {low} a {high} de su atención: las cabezas sin nada que hacer dejan ahí su peso."
    ),
    "stack.figure": "El modelo entero: {layers} capas × {heads} cabezas (fila: un token, columna: adónde mira).",
    # -- las palabras de las figuras (los campos de qkv.render.figures.FigureText, una clave cada uno) ----------
    "figure.grid_title": "la atención de cada cabeza (fila: un token; columna: el token al que atiende)",
    "figure.layer": "capa {layer}",
    "figure.head": "cabeza {head}",
    "figure.mean": "media de {heads} cabezas",
    "figure.arcs_title": "capa {layer} · {which}: grosor del arco = peso",
    "figure.scale": (
        "color: peso ÷ la escala de la cabeza, el percentil {percentile} de sus pesos fuera de los sumideros"
    ),
    "figure.sink_scale": "columnas sumidero ({sinks}): el peso tal cual",
    "figure.right": "mira a la derecha (a un token posterior)",
    "figure.left": "mira a la izquierda (a un token anterior)",
    "figure.sink": "hacia o desde un sumidero ({sinks})",
    "figure.itself": "a sí mismo (punto)",
    "figure.arcs_cut": "se dibujan los {shown} arcos más fuertes de {total} que pesan al menos {threshold}",
    "figure.tokens_cut": "se muestran los tokens {first}…{last} de 0…{final}; se omiten los arcos de y hacia los demás",
}
