// Message templates: "{name}" in a template is replaced by vars.name. The explorer's messages (i18n.js) and the
// self-contained trace view (whose words travel in its data) fill their templates with the same function.

/** `template` with each {name} replaced by String(vars.name); a name vars lacks stays as it is. */
export function format(template, vars = {}) {
  return template.replace(/\{(\w+)\}/g, (match, name) => (name in vars ? String(vars[name]) : match));
}

/** A function of (key, vars) that fills the template `table[key]`; an unknown key shows itself, never undefined. */
export function sayer(table) {
  return (key, vars = {}) => (key in table ? format(table[key], vars) : key);
}
