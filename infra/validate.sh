#!/usr/bin/env bash
# Offline checks of infra/: `terraform fmt -check -recursive` and checkov (static security
# analysis, --skip-download, skip list in .checkov.yaml). checkov is installed on first run into
# a virtualenv under ${XDG_CACHE_HOME:-$HOME/.cache}/flash-checkov. Exits non-zero on any failure.
# `terraform validate` and `plan` need the providers and modules downloaded: the release workflow
# runs them (see README).
#
# Terraform is the one on PATH; without one (Debian does not package it), Terraform
# $terraform_version below is downloaded once from HashiCorp's releases
# (TERRAFORM_RELEASES_URL overrides the address) into
# ${XDG_CACHE_HOME:-$HOME/.cache}/flash-terraform/<version>/terraform, and used only if its
# SHA-256 is the one pinned here. INSTALL=0 never downloads; INSTALL=auto (the default) downloads
# when this user is root or may sudo without a password, like the rest of `make validate`;
# INSTALL=1 always does.
set -euo pipefail

infra="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
checkov_version="${CHECKOV_VERSION:-3.3.30}"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/flash-checkov"
status=0

# The terraform binary in HashiCorp's terraform_1.11.4_linux_amd64.zip has this SHA-256 (the zip
# itself is listed in terraform_1.11.4_SHA256SUMS as
# 1ce994251c00281d6845f0f268637ba50c0005657eb3cf096b92f753b42ef4dc). Another version needs its
# own binary's SHA-256 here.
terraform_version=1.11.4
terraform_sha256_linux_amd64=268000fca5c61021c6396893d9483007ba589ad9d0aaccbd7dfa8c78bf7dbe23
terraform_releases="${TERRAFORM_RELEASES_URL:-https://releases.hashicorp.com/terraform}"
terraform_dir="${XDG_CACHE_HOME:-$HOME/.cache}/flash-terraform/$terraform_version"
INSTALL="${INSTALL:-auto}"
if [[ $INSTALL == auto ]]; then
  if [[ $(id -u) -eq 0 ]] || sudo -n true 2>/dev/null; then INSTALL=1; else INSTALL=0; fi
fi

terraform_fail() { echo "infra/validate.sh: $*" >&2; echo "infra: FAILED" >&2; exit 1; }

# Prints the path of a terraform to use, downloading the pinned one when allowed.
find_terraform() {
  local want file url
  if command -v terraform >/dev/null 2>&1; then
    command -v terraform
    return
  fi
  file="$terraform_dir/terraform"
  case "$(uname -s)/$(uname -m)" in
    Linux/x86_64 | Linux/amd64) want=$terraform_sha256_linux_amd64 ;;
    *) terraform_fail "terraform is not installed, and no Terraform build is pinned for $(uname -s)/$(uname -m): install Terraform $terraform_version and put it on PATH" ;;
  esac
  if [[ -x $file ]] && [[ "$(sha256sum "$file" | cut -d ' ' -f 1)" == "$want" ]]; then
    echo "$file"
    return
  fi
  url="$terraform_releases/$terraform_version/terraform_${terraform_version}_linux_amd64.zip"
  if [[ $INSTALL != 1 ]]; then
    terraform_fail "terraform is not installed. Run 'make validate INSTALL=1' (downloads Terraform $terraform_version from $terraform_releases into $terraform_dir, checksum-pinned), or install Terraform and put it on PATH."
  fi
  echo "==> terraform is not installed; downloading Terraform $terraform_version from $url into $terraform_dir" >&2
  mkdir -p "$terraform_dir"
  # python3's zipfile and urllib: no unzip or curl needed. The binary is checked before it lands.
  python3 - "$url" "$file.download" "$want" <<'PY' || { rm -f "$file.download"; terraform_fail "could not install Terraform $terraform_version (see above)"; }
import hashlib, io, sys, urllib.request, zipfile
url, out, want = sys.argv[1:4]
try:
    with urllib.request.urlopen(url, timeout=300) as answer:
        archive = answer.read()
    binary = zipfile.ZipFile(io.BytesIO(archive)).read("terraform")
except Exception as error:
    sys.exit(f"infra/validate.sh: could not download and unpack {url}: {error}")
got = hashlib.sha256(binary).hexdigest()
if got != want:
    sys.exit(f"infra/validate.sh: the terraform binary in {url} has SHA-256 {got}, not the pinned {want}: not installed")
with open(out, "wb") as f:
    f.write(binary)
PY
  chmod 755 "$file.download"
  mv -f "$file.download" "$file"
  echo "$file"
}
terraform=$(find_terraform)
echo "==> $(TF_CLI_CONFIG_FILE=/dev/null CHECKPOINT_DISABLE=1 "$terraform" version | head -n 1) ($terraform)"

echo "==> terraform fmt -check -recursive infra/"
# TF_CLI_CONFIG_FILE: no ~/.terraformrc needed for formatting.
if TF_CLI_CONFIG_FILE=/dev/null "$terraform" fmt -check -recursive -diff "$infra"; then
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
