// Validates AsyncAPI documents with @asyncapi/parser (the specification's JSON Schemas and its
// rules): prints every diagnostic and exits 1 when any is an error. Usage: node
// validate-asyncapi.mjs FILE...
import { readFileSync } from 'node:fs';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';

const parser = new Parser();
let failed = 0;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(readFileSync(file, 'utf8'), { source: file });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  for (const d of diagnostics) {
    const level = d.severity === DiagnosticSeverity.Error ? 'error' : 'note';
    console.log(`${file}: ${level}: ${d.message} at ${(d.path ?? []).join('.')}`);
  }
  if (!document || errors.length) {
    failed += 1;
    console.log(`${file}: INVALID (${errors.length} errors)`);
  } else {
    console.log(`${file}: OK (AsyncAPI ${document.version()})`);
  }
}
process.exit(failed ? 1 : 0);
