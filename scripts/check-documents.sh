#!/usr/bin/env bash
# make documents: the machine-readable contract passes the standard validators.
#
#   docs/openapi/api.json, docs/openapi/queue.json   openapi-spec-validator (OpenAPI 3.1)
#   docs/asyncapi.json                               @asyncapi/parser (AsyncAPI 3.1 and its rules)
#   README.md, BENCHMARKS.md, docs/**/*.md           every relative link leads to a file (and
#                                                    a #fragment to one of its headings)
#
# The documents are generated from the code; the services' tests fail when the committed copies
# differ from what the code generates (BLESS=1 rewrites them). Each validator is first shown a
# broken document, which it must refuse, so a validator that accepts anything fails this check.
# Tools are installed on first run at pinned versions: openapi-spec-validator from PyPI into
# ${XDG_CACHE_HOME:-~/.cache}/flash-documents, @asyncapi/parser from npm (scripts/documents).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
VENV=${XDG_CACHE_HOME:-$HOME/.cache}/flash-documents
OPENAPI_VALIDATOR=openapi-spec-validator==0.9.0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if [[ ! -x $VENV/bin/openapi-spec-validator ]] ||
   [[ $(cat "$VENV/.requirement" 2>/dev/null) != "$OPENAPI_VALIDATOR" ]]; then
  echo "documents: installing $OPENAPI_VALIDATOR into $VENV (one time)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "$OPENAPI_VALIDATOR"
  echo "$OPENAPI_VALIDATOR" > "$VENV/.requirement"
fi
if [[ ! -d scripts/documents/node_modules/@asyncapi/parser ]]; then
  echo "documents: installing @asyncapi/parser (npm ci in scripts/documents)"
  (cd scripts/documents && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
fi

# Broken on purpose: a reference to a schema that does not exist, a channel address that is
# not a string.
python3 - "$TMP" <<'PY'
import json, sys
tmp = sys.argv[1]
api = json.load(open("docs/openapi/api.json"))
api["components"]["schemas"]["Event"]["properties"]["id"] = {"$ref": "#/components/schemas/Nowhere"}
json.dump(api, open(f"{tmp}/broken-openapi.json", "w"))
events = json.load(open("docs/asyncapi.json"))
events["channels"]["queueSocket"]["address"] = 42
json.dump(events, open(f"{tmp}/broken-asyncapi.json", "w"))
PY
if "$VENV/bin/openapi-spec-validator" "$TMP/broken-openapi.json" >/dev/null 2>&1; then
  echo "documents: openapi-spec-validator accepted a broken document" >&2
  exit 1
fi
if node scripts/documents/validate-asyncapi.mjs "$TMP/broken-asyncapi.json" >/dev/null 2>&1; then
  echo "documents: @asyncapi/parser accepted a broken document" >&2
  exit 1
fi

"$VENV/bin/openapi-spec-validator" docs/openapi/api.json docs/openapi/queue.json
node scripts/documents/validate-asyncapi.mjs docs/asyncapi.json

# Every relative link of the Markdown a reader follows leads somewhere: the file exists, and
# a #fragment names one of its headings (GitHub's anchors: lower case, punctuation dropped,
# spaces as hyphens).
python3 - <<'PY'
import pathlib, re, sys
pages = [pathlib.Path(p) for p in ("README.md", "BENCHMARKS.md")] + sorted(pathlib.Path("docs").rglob("*.md"))
link = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
def anchors(page):
    found = set()
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    for heading in re.findall(r"^#+\s+(.*)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found
broken = []
count = 0
for page in pages:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    for target in link.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("mailto:"):
            continue
        count += 1
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page.resolve()
        if not dest.exists():
            broken.append(f"{page}: {target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{page}: {target}: no such heading")
for line in broken:
    print(f"documents: broken link: {line}", file=sys.stderr)
print(f"documents: {count} relative links in {len(pages)} pages, {len(broken)} broken")
sys.exit(1 if broken else 0)
PY
echo "documents: 4 passed, 0 failed"
