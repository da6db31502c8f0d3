#!/usr/bin/env bash
# Offline checks of infra/: `terraform fmt -check -recursive` and checkov (static security
# analysis, --skip-download, skip list in .checkov.yaml). checkov is installed on first run into
# a virtualenv under ${XDG_CACHE_HOME:-$HOME/.cache}/flash-checkov. Exits non-zero on any failure.
# `terraform validate` and `plan` need the providers and modules downloaded: the release workflow
# runs them (see README).
set -euo pipefail

infra="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
checkov_version="${CHECKOV_VERSION:-3.3.30}"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/flash-checkov"
status=0

if ! command -v terraform >/dev/null 2>&1; then
  echo "infra/validate.sh: terraform is not installed" >&2
  exit 1
fi

echo "==> terraform fmt -check -recursive infra/"
# TF_CLI_CONFIG_FILE: no ~/.terraformrc needed for formatting.
if TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive -diff "$infra"; then
  echo "    formatted"
else
  echo "    not formatted: run 'terraform fmt -recursive infra'" >&2
  status=1
fi

if [[ ! -x "$venv/bin/checkov" ]] || [[ "$("$venv/bin/checkov" --version 2>/dev/null)" != "$checkov_version" ]]; then
  echo "==> installing checkov $checkov_version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$checkov_version"
fi

echo "==> checkov $checkov_version (terraform, offline)"
if (cd "$infra" && "$venv/bin/checkov" --config-file .checkov.yaml); then
  echo "    no failed checks"
else
  echo "    checkov found failed checks" >&2
  status=1
fi

if [[ $status -eq 0 ]]; then
  echo "infra: ok"
else
  echo "infra: FAILED" >&2
fi
exit $status
