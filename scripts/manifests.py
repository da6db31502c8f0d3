"""Find, render and read the Kubernetes manifests of the repository.

The shared input side of scripts/validate_k8s.py and scripts/check_prom_rules.py:

  * find_inputs() walks the given paths: a directory with a kustomization file is a kustomize
    root (rendered as a whole; the files below it are its business), every other *.yaml/*.yml
    file is a plain manifest file. Directories in LEFT_OUT are not entered unless the walk
    starts inside them;
  * render() runs `kubectl kustomize` (else `kustomize build`; KUSTOMIZE=/path/to/kustomize
    overrides) on a kustomize root;
  * documents() reads multi-document YAML the way kubectl does (see ManifestLoader) and gives
    each document with its line.

Paths in messages are relative to the current directory when they are inside it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import fnmatch
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PATHS = (REPO / "gitops", REPO / "argocd")
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
YAML_SUFFIXES = (".yaml", ".yml")
NEVER_ENTERED = {".git", ".terraform", "node_modules", "target", "__pycache__"}

# Directories a walk from above does not enter (the repository-relative path, and why). Naming
# one, or a path inside it, on the command line checks it.
LEFT_OUT = {
    "gitops/tests/fixtures": "objects and rules made to fail: gitops/tests/checks_test.py "
    "asserts that the checks reject them",
}

# Files whose YAML documents are not Kubernetes objects (a glob on the repository-relative
# path, and why). Their documents are neither validated nor counted.
NOT_MANIFESTS = {
    "gitops/addons/*/values*.yaml": "Helm values of a cluster add-on: Argo CD renders the chart "
    "at sync time",
    "argocd/bootstrap/values.yaml": "Helm values of the Argo CD chart, used once at bootstrap",
    "gitops/sales/calendar.yaml": "the sale calendar: scripts/render_sales.py renders it into "
    "the prod overlays",
}

TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
MERGE_TAG = "tag:yaml.org,2002:merge"


class ManifestLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe loader that reads YAML as kubectl does: a date stays a string, a bare `=` is the
    string "=", and a key given twice in one mapping is an error."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"key {key_node.value!r} is given twice",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ManifestLoader.add_constructor(
    "tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node)
)


@dataclass
class Source:
    """A plain YAML file, or the output of one kustomize root."""

    label: str
    rendered: bool
    text: str | None = None
    error: str | None = None


class YamlError(Exception):
    """A document that cannot be read; `line` is 1-based, or None when unknown."""

    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.line = line


def add_paths_argument(parser: argparse.ArgumentParser) -> None:
    """The PATH arguments every check takes (read with paths_of)."""
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="files or directories (default: gitops argocd)",
    )


def paths_of(args: argparse.Namespace) -> list[Path]:
    """The paths given, or DEFAULT_PATHS."""
    return args.paths or list(DEFAULT_PATHS)


def shown(path: Path) -> str:
    """A path as messages show it: relative to the current directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def repo_relative(path: Path) -> str | None:
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return None


def is_within(path: Path, directory: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())


def not_manifest_reason(path: Path) -> str | None:
    relative = repo_relative(path)
    if relative is None:
        return None
    return next(
        (why for pattern, why in NOT_MANIFESTS.items() if fnmatch.fnmatchcase(relative, pattern)),
        None,
    )


def kustomization_file(directory: Path) -> Path | None:
    return next(
        (directory / name for name in KUSTOMIZATION_FILES if (directory / name).is_file()), None
    )


def is_component(kustomization: Path) -> bool:
    """A kustomize Component is built only as part of what includes it."""
    try:
        document = yaml.load(kustomization.read_text(encoding="utf-8"), Loader=ManifestLoader)
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(document, dict) and document.get("kind") == "Component"


def walk(start: Path) -> Iterator[tuple[Path, list[str]]]:
    """Yield (directory, file names) below start, sorted, leaving out what should be."""
    skipped = [REPO / d for d in LEFT_OUT if not is_within(start, REPO / d)]
    for directory, subdirs, files in os.walk(start):
        here = Path(directory)
        subdirs[:] = sorted(
            d
            for d in subdirs
            if not d.startswith(".")
            and d not in NEVER_ENTERED
            and not any(is_within(here / d, s) for s in skipped)
        )
        yield here, sorted(files)


def find_inputs(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """Return (kustomize roots, plain YAML files) under the given files and directories."""
    roots: list[Path] = []
    plain: list[Path] = []
    for start in paths:
        if start.is_file():
            if start.name in KUSTOMIZATION_FILES:
                roots.append(start.parent)
            else:
                plain.append(start)
            continue
        claimed: list[Path] = []
        for directory, files in walk(start):
            kustomization = kustomization_file(directory)
            if kustomization is not None:
                claimed.append(directory)
                if not is_component(kustomization):
                    roots.append(directory)
            elif not any(is_within(directory, c) for c in claimed):
                plain += [directory / f for f in files if f.endswith(YAML_SUFFIXES)]
    return roots, plain


def kustomize_command() -> list[str] | None:
    if os.environ.get("KUSTOMIZE"):
        return [os.environ["KUSTOMIZE"], "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


def render(root: Path) -> Source:
    label = shown(root)
    command = kustomize_command()
    if command is None:
        return Source(label, True, error="neither kubectl nor kustomize is on PATH")
    try:
        done = subprocess.run([*command, str(root)], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Source(label, True, error=f"{command[0]} failed: {error}")
    if done.returncode != 0:
        message = " ".join((done.stderr or done.stdout).split())
        return Source(label, True, error=f"does not render: {message[:800]}")
    return Source(label, True, text=done.stdout)


def read_sources(paths: Iterable[Path]) -> list[Source]:
    """Every kustomize root rendered (in parallel), then every plain file read."""
    roots, plain = find_inputs(paths)
    workers = max(2, 2 * (os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        sources = list(pool.map(render, roots))
    for path in plain:
        try:
            sources.append(Source(shown(path), False, text=path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as error:
            sources.append(Source(shown(path), False, error=f"cannot read: {error}"))
    return sources


def documents(text: str) -> Iterator[tuple[int, Any]]:
    """Yield (first line, document) for each non-empty YAML document of text. Raise YamlError
    at the first document that cannot be read (those before it have been yielded)."""
    loader = ManifestLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            line = node.start_mark.line + 1
            try:
                document = loader.construct_document(node)
            except yaml.YAMLError as error:
                raise yaml_error(error, line) from None
            if document is not None:
                yield line, document
    except yaml.YAMLError as error:
        raise yaml_error(error, None) from None
    finally:
        loader.dispose()


def yaml_error(error: yaml.YAMLError, line: int | None) -> YamlError:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    return YamlError(" ".join(str(problem).split()), mark.line + 1 if mark else line)
