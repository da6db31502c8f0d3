#!/usr/bin/env python3
"""Point an overlay's image at a pushed image, or promote one overlay's images to another.

The release workflow (.github/workflows/release.yml) runs it after pushing to ECR:

    scripts/set-image.py set gitops/apps/api/overlays/dev flash-api \\
        --repository 123456789012.dkr.ecr.eu-west-1.amazonaws.com/flash/api \\
        --tag 3f2c1ab --digest sha256:...

    scripts/set-image.py promote gitops/apps/api/overlays/dev gitops/apps/api/overlays/prod flash-api

It rewrites only the `images:` entry of that name in the overlay's kustomization.yaml (comments
and every other line stay as they are), so the commit Argo CD syncs is a small, readable diff.
The result renders as `<repository>:<tag>@<digest>`: the tag is for people, the digest is what
the kubelet pulls. Exit status 1 with a message when the entry or a value is not what it should be.
"""
import argparse
import os
import re
import sys

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
REPOSITORY = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\.[a-z0-9-]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)+$")
FIELDS = ("newName", "newTag", "digest")


def kustomization(overlay):
    path = os.path.join(overlay, "kustomization.yaml")
    if not os.path.isfile(path):
        sys.exit("set-image: no kustomization.yaml in %s" % overlay)
    return path


def find_entry(lines, name):
    """(start, end, indent) of the `- name: NAME` item in the top-level images: list."""
    try:
        top = next(i for i, l in enumerate(lines) if re.match(r"^images:\s*$", l))
    except StopIteration:
        return None
    i = top + 1
    while i < len(lines):
        line = lines[i]
        if line.strip() and not line.startswith((" ", "-", "#")):
            break  # the next top-level key
        m = re.match(r"^(\s*)- name:\s*['\"]?([^'\"\s#]+)['\"]?\s*(#.*)?$", line)
        if m and m.group(2) == name:
            indent = len(m.group(1)) + 2
            end = i + 1
            while end < len(lines):
                nxt = lines[end]
                if not nxt.strip():
                    break
                if len(nxt) - len(nxt.lstrip()) < indent or nxt.lstrip().startswith("- "):
                    break
                end += 1
            return i, end, indent
        i += 1
    return None


def read_fields(lines, start, end):
    out = {}
    for line in lines[start + 1:end]:
        m = re.match(r"^\s*(\w+):\s*['\"]?([^'\"#]*?)['\"]?\s*(#.*)?$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def write_entry(path, name, values):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    found = find_entry(lines, name)
    if found is None:
        sys.exit("set-image: %s has no images: entry named %s" % (path, name))
    start, end, indent = found
    pad = " " * indent
    body = [pad + "newName: " + values["newName"]]
    if values.get("newTag"):
        body.append(pad + 'newTag: "%s"' % values["newTag"])
    if values.get("digest"):
        body.append(pad + "digest: " + values["digest"])
    lines[start + 1:end] = body
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    os.replace(path + ".tmp", path)


def check(values):
    if not REPOSITORY.match(values["newName"]):
        sys.exit("set-image: %r is not an image repository" % values["newName"])
    if values.get("newTag") and (not TAG.match(values["newTag"]) or values["newTag"] == "latest"):
        sys.exit("set-image: %r is not a usable tag (and never `latest`)" % values["newTag"])
    if values.get("digest") and not DIGEST.match(values["digest"]):
        sys.exit("set-image: %r is not a sha256 digest" % values["digest"])
    if not values.get("digest") and not values.get("newTag"):
        sys.exit("set-image: an image needs a digest or a tag")


def main(argv):
    ap = argparse.ArgumentParser(prog="set-image", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("set", help="point NAME in OVERLAY at REPOSITORY[:TAG]@DIGEST")
    s.add_argument("overlay")
    s.add_argument("name")
    s.add_argument("--repository", required=True)
    s.add_argument("--digest", required=True)
    s.add_argument("--tag")
    p = sub.add_parser("promote", help="copy NAME's image from one overlay to another")
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("name")
    a = ap.parse_args(argv)

    if a.cmd == "set":
        values = {"newName": a.repository, "newTag": a.tag, "digest": a.digest}
        check(values)
        write_entry(kustomization(a.overlay), a.name, values)
        print("%s: %s -> %s%s@%s" % (a.overlay, a.name, a.repository,
                                     ":" + a.tag if a.tag else "", a.digest))
    else:
        src = kustomization(a.source)
        with open(src, encoding="utf-8") as f:
            lines = f.read().split("\n")
        found = find_entry(lines, a.name)
        if found is None:
            sys.exit("set-image: %s has no images: entry named %s" % (src, a.name))
        values = read_fields(lines, found[0], found[1])
        if not values.get("digest"):
            sys.exit("set-image: %s pins %s by tag only; promote an image released by digest"
                     % (src, a.name))
        check(values)
        write_entry(kustomization(a.target), a.name, values)
        print("%s: %s -> %s@%s (from %s)" % (a.target, a.name, values["newName"],
                                             values["digest"], a.source))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
