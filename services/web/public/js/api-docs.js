// The API reference page: renders the services' OpenAPI documents (operations by tag, their
// parameters, bodies and answers, and the schemas) with DOM text only (no HTML from the
// documents is ever interpreted).

const DOCUMENTS = [
  { id: 'api', url: '/api/openapi.json' },
  { id: 'queue', url: '/queue/openapi.json' },
];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

// Text with `code` spans, as the documents write them.
function prose(text, tag = 'p') {
  const node = el(tag);
  String(text ?? '').split(/(`[^`]*`)/).forEach((part) => {
    if (part.startsWith('`') && part.endsWith('`') && part.length > 1) node.append(el('code', {}, part.slice(1, -1)));
    else if (part) node.append(document.createTextNode(part));
  });
  return node;
}

const refName = (ref) => String(ref).split('/').pop();

function schemaLink(prefix, schema) {
  if (!schema) return el('span', {}, '—');
  if (schema.$ref) {
    const name = refName(schema.$ref);
    return el('a', { href: `#${prefix}-schema-${name}` }, name);
  }
  if (schema.type === 'array' || (Array.isArray(schema.type) && schema.type.includes('array'))) {
    return el('span', {}, 'array of ', schemaLink(prefix, schema.items));
  }
  if (schema.oneOf) {
    const parts = [];
    schema.oneOf.forEach((item, i) => {
      if (i) parts.push(' or ');
      parts.push(schemaLink(prefix, item));
    });
    return el('span', {}, ...parts);
  }
  const type = Array.isArray(schema.type) ? schema.type.join(' | ') : (schema.type ?? 'any');
  const format = schema.format ? ` (${schema.format})` : '';
  const values = schema.enum ? `: ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}` : '';
  return el('span', {}, `${type}${format}${values}`);
}

function bounds(schema) {
  const parts = [];
  if (schema.minimum !== undefined) parts.push(`≥ ${schema.minimum}`);
  if (schema.maximum !== undefined) parts.push(`≤ ${schema.maximum}`);
  if (schema.minLength !== undefined) parts.push(`${schema.minLength}+ chars`);
  if (schema.maxLength !== undefined) parts.push(`≤ ${schema.maxLength} chars`);
  return parts.join(', ');
}

function operationView(prefix, method, path, op) {
  const id = `${prefix}-op-${op.operationId ?? `${method}-${path}`}`;
  const secured = (op.security ?? []).length > 0;
  const body = op.requestBody?.content?.['application/json']?.schema;
  const params = op.parameters ?? [];
  const answers = Object.entries(op.responses ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return el('details', { class: 'api-op', id },
    el('summary', {},
      el('span', { class: `api-method api-${method}` }, method.toUpperCase()), ' ',
      el('code', {}, path), ' ',
      el('span', { class: 'api-summary' }, (op.summary ?? '').split('\n')[0])),
    op.description ? prose(op.description) : null,
    prose(secured ? 'Needs `Authorization: Bearer <access token>`.' : 'No token needed.'),
    params.length ? el('table', { class: 'api-table' },
      el('caption', {}, 'Parameters'),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Name'), el('th', { scope: 'col' }, 'In'), el('th', { scope: 'col' }, 'Type'), el('th', { scope: 'col' }, 'About'))),
      el('tbody', {}, params.map((p) => el('tr', {},
        el('td', {}, el('code', {}, p.name)), el('td', {}, p.in), el('td', {}, schemaLink(prefix, p.schema)), el('td', {}, prose(p.description ?? '', 'span')))))) : null,
    body ? el('p', {}, 'Body (application/json): ', schemaLink(prefix, body)) : null,
    el('table', { class: 'api-table' },
      el('caption', {}, 'Answers'),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Status'), el('th', { scope: 'col' }, 'Meaning'), el('th', { scope: 'col' }, 'Body'))),
      el('tbody', {}, answers.map(([status, answer]) => {
        const [type, content] = Object.entries(answer.content ?? {})[0] ?? [];
        return el('tr', {},
          el('td', {}, el('strong', {}, status)),
          el('td', {}, prose(answer.description ?? '', 'span')),
          el('td', {}, content ? el('span', {}, schemaLink(prefix, content.schema), ` (${type})`) : '—'));
      }))));
}

function schemaView(prefix, name, schema) {
  const required = new Set(schema.required ?? []);
  const properties = Object.entries(schema.properties ?? {});
  return el('details', { class: 'api-schema', id: `${prefix}-schema-${name}` },
    el('summary', {}, el('code', {}, name)),
    schema.description ? prose(schema.description) : null,
    properties.length ? el('table', { class: 'api-table' },
      el('caption', {}, `Fields of ${name}`),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Field'), el('th', { scope: 'col' }, 'Type'), el('th', { scope: 'col' }, 'Bounds'), el('th', { scope: 'col' }, 'About'))),
      el('tbody', {}, properties.map(([field, prop]) => el('tr', {},
        el('td', {}, el('code', {}, field), required.has(field) ? '' : ' (optional)'),
        el('td', {}, schemaLink(prefix, prop)),
        el('td', {}, bounds(prop)),
        el('td', {}, prose(prop.description ?? '', 'span')))))) : el('p', {}, schemaLink(prefix, schema)));
}

function documentView(prefix, url, doc) {
  const section = el('section', { id: prefix, 'aria-labelledby': `${prefix}-title` },
    el('h2', { id: `${prefix}-title` }, `${doc.info?.title ?? prefix} `, el('small', {}, `v${doc.info?.version ?? ''}`)),
    prose(doc.info?.description ?? ''),
    el('p', {}, el('a', { href: url }, `${url} (raw)`)));
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const [method, op] of Object.entries(item)) {
      const tag = op.tags?.[0] ?? 'other';
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operationView(prefix, method, path, op));
    }
  }
  for (const tag of doc.tags ?? []) {
    if (!byTag.has(tag.name)) continue;
    section.append(el('h3', {}, tag.name), prose(tag.description ?? ''), ...byTag.get(tag.name));
    byTag.delete(tag.name);
  }
  for (const [tag, ops] of byTag) section.append(el('h3', {}, tag), ...ops);
  const schemas = Object.entries(doc.components?.schemas ?? {});
  section.append(el('h3', {}, 'Schemas'), ...schemas.map(([name, schema]) => schemaView(prefix, name, schema)));
  return section;
}

async function main() {
  const container = document.getElementById('docs');
  const toc = document.getElementById('toc');
  const sections = [];
  for (const { id, url } of DOCUMENTS) {
    try {
      const response = await fetch(url, { headers: { Accept: 'application/json' } });
      if (!response.ok) throw new Error(`${url} answered ${response.status}`);
      const doc = await response.json();
      sections.push(documentView(id, url, doc));
      toc.append(el('li', {}, el('a', { href: `#${id}` }, doc.info?.title ?? id)));
    } catch (error) {
      sections.push(el('p', { role: 'alert' }, `Could not read ${url}: ${error.message}`));
    }
  }
  container.replaceChildren(...sections);
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

main();
