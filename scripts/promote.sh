#!/usr/bin/env bash
# Prepare a promotion to flash-prod: the one change a reviewer approves (argocd/README.md
# "Promotion").
#
#   scripts/promote.sh [NAME]                 dev's images and everything on this commit
#   scripts/promote.sh --keep-images [NAME]   this commit with prod's current images (a sale
#                                             calendar, a configuration or an add-on change)
#
# NAME is the release tag to be, release-YYYY-MM-DD or release-YYYY-MM-DD.N; by default
# release-<today, UTC>, with the first free .N when that tag exists. The script
#   1. copies the image digests of gitops/apps/*/overlays/dev to the prod overlays
#      (scripts/set-image.py promote; refused while dev pins an image by tag only), unless
#      --keep-images;
#   2. writes NAME as flash-prod's revision in argocd/envs/prod/root.yaml, which every prod
#      Application takes (argocd/envs/prod/kustomization.yaml, replacements);
#   3. checks that the prod overlays and argocd/envs/prod still render, and prints what the new
#      release brings compared with the one prod runs.
# It commits nothing: commit on a branch and open a pull request. When it is merged and main's
# checks pass, the release workflow verifies the prod images' signatures and creates the tag NAME
# on the merge commit; then point flash-root at it (argocd/README.md "Promotion").
set -euo pipefail

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$ROOT"
ROOT_APP=argocd/envs/prod/root.yaml
NAME_RE='^release-[0-9]{4}-[0-9]{2}-[0-9]{2}(\.[1-9][0-9]*)?$'
SERVICES=(gateway api pay web)
die() { echo "promote: $*" >&2; exit 1; }

keep_images=false
if [ "${1:-}" = --keep-images ]; then keep_images=true; shift; fi
[ $# -le 1 ] || die "usage: scripts/promote.sh [--keep-images] [release-YYYY-MM-DD[.N]]"

revision_of() { sed -n 's/^    targetRevision: *\([^ #]*\).*/\1/p' "$1"; }
current=$(revision_of "$ROOT_APP")

# Tags known here and on origin (when it answers): a release name is used once.
tags=$(git tag -l 'release-*')
if remote=$(git ls-remote --tags --refs origin 'refs/tags/release-*' 2> /dev/null); then
  tags=$(printf '%s\n%s\n' "$tags" "$(sed 's|.*refs/tags/||' <<< "$remote")")
else
  echo "promote: warning: could not list origin's tags; checked the local ones only" >&2
fi
taken() { grep -qxF "$1" <<< "$tags" || [ "$1" = "$current" ]; }

name=${1:-}
if [ -z "$name" ]; then
  name=release-$(date -u +%F)
  n=1
  while taken "$name"; do n=$((n + 1)); name=release-$(date -u +%F).$n; done
fi
[[ "$name" =~ $NAME_RE ]] || die "'$name' is not a release name release-YYYY-MM-DD[.N]"
! taken "$name" || die "$name is taken (a tag, or prod's current revision): choose another name"
! git show-ref --quiet --verify "refs/heads/$name" || die "a branch is named $name: release names are for tags only"

if ! $keep_images; then
  for service in "${SERVICES[@]}"; do
    python3 scripts/set-image.py promote "gitops/apps/$service/overlays/dev" \
      "gitops/apps/$service/overlays/prod" "flash-$service"
  done
fi

sed -i "s/^\(    targetRevision: *\)[^ #]*/\1$name/" "$ROOT_APP"
[ "$(revision_of "$ROOT_APP")" = "$name" ] || die "could not write $name into $ROOT_APP"

for d in argocd/envs/prod "${SERVICES[@]/%//overlays/prod}"; do
  [ "$d" = argocd/envs/prod ] || d=gitops/apps/$d
  kubectl kustomize "$d" > /dev/null || die "$d does not render"
done

echo
echo "flash-prod: $current -> $name"
if git rev-parse -q --verify "refs/tags/$current" > /dev/null; then
  echo "What $name brings to prod besides this change (git diff --stat $current HEAD -- argocd gitops):"
  git diff --stat "$current" HEAD -- argocd gitops | tail -n 25
else
  echo "($current is not a tag here: git fetch --tags to compare with it)"
fi
echo
git status --short -- "$ROOT_APP" gitops/apps
cat <<EOF

Next: commit on a branch ("promote: $name"), open a pull request, get it reviewed and merged.
The release workflow then tags the merge commit $name; point flash-prod at it with
  argocd app set flash-root --revision $name
(argocd/README.md "Promotion").
EOF
