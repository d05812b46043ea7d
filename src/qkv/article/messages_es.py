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
    "part2.title": "Parte 2 — claves unitarias: relevancia = k_a · k_b, dividida por la suma",
    "part2.source": (
        "Las claves salen de la primera capa de MiniLM: la cabeza {head} de {heads}, K = {width} números por clave, "
        "cada una dividida por su longitud (las claves unitarias k del artículo)."
    ),
    "part2.choice": (
        "Por qué la cabeza {head}: se han calculado ahora las {heads} cabezas, y en esta es donde riley ⇒ dog más "
        "supera a dog ⇒ riley (pesos {there} y {back} tras el eslabón final de la Parte 3). La Parte 4 muestra "
        "todas las cabezas."
    ),
    "part2.inputs": (
        "La capa lee cada palabra como LayerNorm(embedding + tipo de token), de longitud ≈ {norm} (la del "
        "embedding crudo: ≈ {raw}); aún sin posiciones. Los valores siguen siendo los significados de la Parte 1, "
        "los embeddings crudos."
    ),
    "part2.pair": "riley ⇒ dog: k_riley · k_dog = {there}   dog ⇒ riley: k_dog · k_riley = {back}",
    "part2.same": "Lo mismo en ambos sentidos, porque el producto escalar es simétrico",
    "part2.different": "Distinto",
    "part2.symmetric": "{verdict}: en toda la frase, máx |r[a, b] − r[b, a]| = {gap}.",
    "part2.closest": (
        "La clave más cercana a la de riley: {riley_best} ({riley_value}); a la de dog: {dog_best} ({dog_value})."
    ),
    "part2.positive": (
        "En esta cabeza todas las relevancias son ≥ 0 (la menor, {low}), así que dividir una fila por su suma da "
        "una media ponderada como es debido."
    ),
    "part2.range": (
        "El producto escalar de vectores unitarios cae en [-1, 1], no en [0, 1]: aquí {negatives} de las {total} "
        "relevancias son negativas."
    ),
    "part2.row_head": "  pesos de riley, sus relevancias divididas por su suma:",
    "part2.divided": (
        "riley da a dog {there} y dog da a riley {back}: solo difieren por las sumas de sus filas ({riley_sum} y "
        "{dog_sum}), no por nada que riley o dog busquen."
    ),
    "part2.new_value": "El nuevo v_riley, una suma ponderada de valores: su similitud con dog {before} → {after}.",
    "part2.raw": (
        "Las claves literales del artículo (embeddings crudos por los {width} números, de longitud 1) muestran por "
        "qué dice [0, 1] demasiado pronto: k_riley · k_dog = {there};"
    ),
    "part2.raw_range": (
        "  el producto escalar de claves unitarias cae en [-1, 1]: {negatives} de las {total} relevancias son "
        "negativas;"
    ),
    "part2.lowest": "  la más baja de riley es riley · {word} = {value};",
    "part2.keeps": "  dividida por la suma de su fila ({total}), riley conserva {own} y {word} recibe {weight};",
    "part2.keeps_subtracted": (
        "  dividida por la suma de su fila ({total}), riley conserva {own} y {word} recibe {weight}: su valor se resta;"
    ),
    "part2.scale": "  esos pesos suman {total} pero son {times}× mayores que la escala de las propias relevancias;",
    "part2.raises": "  normalise() lanza ArticleMathError con esas filas salvo que se le pase strict=False.",
    "part2.wrong": (
        "Lo que falla: la relevancia es simétrica (riley ⇒ dog = dog ⇒ riley = {value}), pero riley ⇒ dog debería "
        "ser fuerte y dog ⇒ riley débil: que Riley sea un perro le importa más a riley que el nombre del perro a "
        "dog."
    ),
    # -- Parte 3 -------------------------------------------------------------------------------------------
    "part3.title": "Parte 3 — consultas: relevancia = q_a · k_b, new_V = normalise(Q @ K.T) @ V",
    "part3.source": (
        "Las consultas salen de la cabeza {head}, la de la Parte 2 (donde riley ⇒ dog más supera a dog ⇒ riley); "
        "sus claves conservan ahora su propia longitud, como las usa el modelo."
    ),
    "part3.pair": "riley ⇒ dog: q_riley · k_dog = {there}   dog ⇒ riley: q_dog · k_riley = {back}",
    "part3.asymmetric": "Asimétrica",
    "part3.equal": "Iguales aquí",
    "part3.ranks": (
        "dog es la {riley_rank}.ª de {rows} puntuaciones de riley; riley es la {dog_rank}.ª de las de dog (la más "
        "alta de dog: {dog_best}, {dog_value})."
    ),
    "part3.gap": "{verdict}: en toda la frase, máx |r[a, b] − r[b, a]| = {gap}.",
    "part3.range": "Las consultas no son vectores unitarios: las relevancias van de {low} a {high}.",
    "part3.holds": "La normalización por la suma del artículo funciona con esta frase.",
    "part3.anyway": (
        "Divididas por la suma de su fila de todos modos (strict=False): riley ⇒ dog {there}, dog ⇒ riley {back}, "
        "riley ⇒ riley {own}."
    ),
    "part3.raises": (
        "Pero normalise(Q @ K.T) del artículo lanza ArticleMathError: {negative} de {total} relevancias son "
        "negativas (en {negative_rows} de {rows} filas), {flipped} filas suman menos de 0 (dividir cambiaría "
        "todos los signos) y {near_zero} casi 0."
    ),
    "part3.error": "ArticleMathError (mensaje de la biblioteca, en inglés): {message}",
    # -- el eslabón final ----------------------------------------------------------------------------------
    "link.title": "El eslabón final — Parte 3 + softmax + 1/√K es qkv.attend",
    "link.formula": "softmax(Q @ K.T · {scale}) @ V, con K = {width} y 1/√K = {scale}:",
    "link.rows": "  todos los pesos son positivos y cada fila suma 1: máx |suma − 1| = {gap}",
    "link.difference": "  máx |part3_with_softmax − qkv.attend| ({name}): {difference}",
    "link.exact_outputs": "camino exacto, salidas",
    "link.exact_weights": "camino exacto, pesos",
    "link.fused_outputs": "camino fusionado, salidas",
    "link.checked": (
        "  comprobado con los caminos exacto y fusionado de qkv.attend: iguales con tolerancia {tolerance}."
    ),
    "link.attends": "riley atiende ahora sobre todo a: {attended} (el reparto uniforme sería {uniform}).",
    "link.payoff": (
        "riley ⇒ dog pesa {there}, dog ⇒ riley solo {back} (dog mira sobre todo a {dog_best}, {dog_value}): la "
        "consulta deja que riley tome el significado de dog sin que dog tome el de riley."
    ),
    "link.no_payoff": (
        "riley ⇒ dog pesa {there}, dog ⇒ riley {back} (dog mira sobre todo a {dog_best}, {dog_value}): aquí las "
        "consultas no favorecen riley ⇒ dog."
    ),
    "link.new_value": "Similitud del nuevo v_riley con dog: {before} → {after}.",
    "link.raw": (
        "Con los vectores literales del artículo (embeddings crudos por los {width} números) la misma fórmula da "
        "riley ⇒ dog {there} y dog ⇒ riley {back}, ningún peso por encima de {top} (uniforme: {uniform}): los "
        "embeddings crudos son {times} veces más cortos que lo que lee la capa, así que sus puntuaciones apenas "
        "difieren."
    ),
    "link.why": (
        "Por qué 1/√K: un producto escalar de K términos, cada uno de dispersión 1, tiene dispersión √K; dividir "
        "entre √K mantiene la misma dispersión sea cual sea la anchura, y softmax no deriva al todo o nada."
    ),
    "link.spread": "  Dispersión (desviación típica) de las puntuaciones: {unscaled} sin escalar, {scaled} escaladas.",
    "link.figure": "La Parte 3 con softmax y 1/√K, cabeza {head}: adónde mira cada palabra (grosor del arco = peso).",
    # -- Parte 4 -------------------------------------------------------------------------------------------
    "left.title": "Parte 4 — lo que el artículo dejó fuera",
    "left.intro": "El artículo termina nombrando detalles que se saltó. Cada uno, medido en la misma frase:",
    "left.list": "  softmax · cabezas · la escala 1/√K · posiciones · capas apiladas.",
    "soft.title": "4.1 Softmax en lugar de dividir por la suma",
    "soft.scores": (
        "Puntuaciones de la Parte 3 para riley (cabeza {head}): la más alta con {best} ({high}), la más baja con "
        "{worst} ({low})."
    ),
    "soft.summed": "  divididas por su suma ({total}): {best} recibe {high}, {worst} recibe {low}{verdict}",
    "soft.reversed": " — el orden queda invertido.",
    "soft.negative": " — un peso negativo: ese valor se resta.",
    "soft.fine": "; aquí sin daño.",
    "soft.softmaxed": (
        "  softmax(puntuación / √K), el eslabón final de la Parte 3: {best} recibe {high}, {worst} recibe {low} — "
        "todos positivos."
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
        "Las palabras entran como las lee esa capa, igual que en las Partes 2–3: embedding + tipo de token, "
        "normalizado por la LayerNorm del modelo (longitud ≈ {norm} en vez de {raw}); ahora también se proyectan "
        "los valores; aún sin posiciones."
    ),
    "heads.riley": "La palabra a la que más atiende riley, cabeza por cabeza (cabeza, palabra, peso):",
    "heads.cell": "{head:>2} {word:>11} {weight}",
    "heads.distinct": (
        "{distinct} palabras distintas quedan primeras entre las {heads} cabezas: cada cabeza aprendió su propia "
        "relevancia."
    ),
    "heads.article": "La cabeza {head} es la que usaron las Partes 2–3: riley ⇒ dog {there}, dog ⇒ riley {back}.",
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
        "Softmax de {keys} puntuaciones así, como peso mayor medio / entropía media en bits (un reparto uniforme es "
        "{even} / {bits} bits; una sola palabra con todo, 1.00 / 0.00):"
    ),
    "scale.softmax_row": "  K = {width:>4}: sin escalar {max_u} / {bits_u} bits   escaladas {max_s} / {bits_s} bits",
    "scale.real": (
        "La primera capa de MiniLM con la frase (K = {head_width}), en media sobre sus cabezas y palabras: sin "
        "escalar, el peso mayor es {max_u} y la entropía {bits_u} bits; escaladas, {max_s} y {bits_s} bits (un "
        "reparto uniforme: {even} y {bits} bits)."
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
