"""`kstream export`: a snapshot (any source `open_source` opens) as a tree of
files, one object per file, ready to keep in git and to apply back with kubectl.

Layout (docs/export.md): `DIR/<namespace>/<resource>/<name>.yaml` for namespaced
objects, `DIR/_cluster/<resource>/<name>.yaml` for cluster-scoped ones (`<resource>`
is `plural.group`, the core group's plain `plural`), and `DIR/kstream-export.index`:
the files the export wrote, in apply order (CustomResourceDefinitions, Namespaces,
the rest, webhook configurations last). The index is also the export's mark of
ownership: a re-export replaces and removes only files it lists, never others.

The objects stream: one is read, cleaned (`kstream/neat.py`), written to a staging
directory and forgotten; the index's sections are spooled to temporary files.
Memory does not grow with the number of objects (a re-export into an existing
export holds the previous index's file names, about 100 bytes each).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import field
from pathlib import Path
from typing import IO, Any, Literal

from kstream import deepjson, neat, yamlout
from kstream.count import Filters, selected_entries, selected_kind
from kstream.dataclass import dataclass
from kstream.errors import OutputError, UsageError
from kstream.exitcodes import ExitCode
from kstream.selector import Scope
from kstream.store.outputs import dir_target
from kstream.store.snapshot import object_of
from kstream.store.staging import Staging

ExportFormat = Literal["yaml", "json"]
INDEX_NAME = "kstream-export.index"
INDEX_HEAD = "# kstream export index, version 1"
CLUSTER_DIR = "_cluster"
EXAMPLES_PER_REASON = 3
NAME_MAX = 255
SECRETS_WITHHELD = "redacted Secrets"


@dataclass(frozen=True)
class ExportSettings:
    source: str
    output: str
    format: ExportFormat = "yaml"
    scope: Scope = field(default_factory=Scope)
    keep: bool = False  # --keep: no cleaning
    all: bool = False  # --all: nothing left out
    placeholders: bool = False  # --secret-placeholders
    force: bool = False


@dataclass
class ExportResult:
    directory: str
    objects: int = 0  # files the export holds
    written: int = 0  # of them, new or changed
    unchanged: int = 0
    removed: int = 0  # files of the previous export no longer exported
    left_out: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    secrets_withheld: int = 0
    placeholders: int = 0
    incomplete: list[str] = field(default_factory=list)
    problem: str = ""
    notes: list[str] = field(default_factory=list)  # said on stderr, not with -q

    @property
    def exit_code(self) -> ExitCode:
        if self.problem:
            return ExitCode.SNAPSHOT
        if self.secrets_withheld or self.incomplete:
            return ExitCode.PARTIAL
        return ExitCode.OK

    def leave_out(self, reason: str, what: str) -> None:
        self.left_out[reason] = self.left_out.get(reason, 0) + 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < EXAMPLES_PER_REASON:
            ex.append(what)


@dataclass(frozen=True)
class Item:
    """One object of the source, with what export needs to place it."""

    group: str
    resource: str
    namespaced: bool
    doc: dict[str, Any]


# --------------------------------------------------------------------------- reading


def items(snap: Any, scope: Scope, result: ExportResult) -> Iterator[Item]:
    """The source's objects the scope selects, one at a time (count's rules:
    a manifest's units, or each object's apiVersion and kind without one)."""
    filters = Filters(scope)
    wanted = set(filters.namespaces)
    explicit = bool(filters.include)

    def keep(md: dict[str, Any], namespaced: bool) -> bool:
        ns = md.get("namespace") or None
        if wanted and (ns not in wanted if namespaced and ns is not None else not explicit):
            return False
        if filters.labels and not filters.labels.matches(md.get("labels")):
            return False
        return not (filters.fields and not filters.fields.matches(md))

    if snap.manifest is None:
        decided: dict[tuple[str, str], tuple[str, str] | None] = {}
        for _, doc in snap.documents():
            av, kind = str(doc.get("apiVersion") or ""), str(doc.get("kind") or "")
            if (av, kind) not in decided:
                r = selected_kind(filters, av, kind)
                decided[(av, kind)] = (r.group, r.resource) if r else None
            res = decided[(av, kind)]
            md = _meta(doc)
            if res is None or not keep(md, bool(md.get("namespace"))):
                continue
            yield Item(res[0], res[1], bool(md.get("namespace")), doc)
        return
    m = snap.manifest
    for nr in m.not_read:
        result.incomplete.append(f"{nr.name}: {nr.status}, not in the snapshot")
    for f in m.discovery_failures:
        result.incomplete.append(f"{f.group_version}: discovery failed, not in the snapshot")
    for e in selected_entries(snap.entries, filters):
        if e.status != "complete":
            where = f" in {e.namespace}" if e.namespace else ""
            result.incomplete.append(
                f"{e.name}{where}: {e.status} in the snapshot, exported as far as read"
            )
            if e.offset is None and e.file is None:
                continue  # nothing of it was written
        for line in snap.lines(e):
            doc = object_of(line, snap.path)
            if keep(_meta(doc), e.namespaced):
                yield Item(e.group, e.resource, e.namespaced, doc)


def _meta(doc: dict[str, Any]) -> dict[str, Any]:
    md = doc.get("metadata")
    return md if isinstance(md, dict) else {}


# --------------------------------------------------------------------------- placing


def file_name(name: str, ext: str) -> str:
    """A file name for an object's name: the name itself when it can be one,
    else the name made safe and a digest of it (a name with '/', '.', '..',
    an empty one, or one too long for a file name)."""
    ok = name not in ("", ".", "..") and "/" not in name and "\0" not in name
    if ok and len(name.encode()) + len(ext) <= NAME_MAX:
        return name + ext
    h = hashlib.sha256(name.encode()).hexdigest()[:16]
    safe = name.replace("/", "_").replace("\0", "_").strip(".") or "_"
    while len(safe.encode()) + len(ext) + 17 > NAME_MAX:
        safe = safe[:-1]
    return f"{safe}~{h}{ext}"


def relative_path(item: Item, ext: str) -> str:
    md = _meta(item.doc)
    dir1 = str(md.get("namespace") or "") if item.namespaced else ""
    if not dir1 or dir1 in (".", "..") or "/" in dir1:
        dir1 = CLUSTER_DIR
    res = f"{item.resource}.{item.group}" if item.group else item.resource
    return f"{dir1}/{res}/{file_name(str(md.get('name') or ''), ext)}"


def section(item: Item) -> int:
    """The index section (apply order): 0 CRDs, 1 Namespaces, 2 the rest, 3
    webhook configurations (their backends must run before they are enforced)."""
    if (item.group, item.resource) == ("apiextensions.k8s.io", "customresourcedefinitions"):
        return 0
    if (item.group, item.resource) == ("", "namespaces"):
        return 1
    if item.group == "admissionregistration.k8s.io" and item.resource.endswith(
        "webhookconfigurations"
    ):
        return 3
    return 2


def render(doc: dict[str, Any], fmt: ExportFormat) -> bytes:
    doc = neat.ordered(doc)
    if fmt == "json":
        try:  # indented: a changed field is a changed line in git
            text = json.dumps(doc, ensure_ascii=False, indent=2)
        except RecursionError:  # thousands of levels deep: one line
            text = deepjson.dumps(doc, ensure_ascii=False)
        return (text + "\n").encode("utf-8", "surrogatepass")
    return yamlout.dumps(doc).encode("utf-8", "surrogatepass")


# --------------------------------------------------------------------------- the job


def export(settings: ExportSettings) -> ExportResult:
    """Export `settings.source` into `settings.output` (see the module docstring)."""
    from kstream.sources import open_source

    target = check_target(settings.output, settings.force)
    snap = open_source(settings.source)
    result = ExportResult(str(target))
    result.problem = snap.problem
    options = snap.manifest.options if snap.manifest is not None else None
    secrets_mode = options.secrets if options is not None else None
    # stale staging directories of killed exports of this target go first
    staged = Staging.make(target, export=True, note=result.notes.append)
    staging = staged.path
    try:
        stage(snap, settings, secrets_mode, result, staging)
        commit(staging, target, result)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        staged.release()
    return result


def stage(
    snap: Any,
    settings: ExportSettings,
    secrets_mode: str | None,
    result: ExportResult,
    staging: Path,
) -> None:
    """Write every exported object into `staging`, and the index (its sections
    spooled to temporary files meanwhile)."""
    ext = "." + settings.format
    made = [staging]
    with contextlib.ExitStack() as stack:
        sections = [
            stack.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8")) for _ in range(4)
        ]
        for item in items(snap, settings.scope, result):
            path = place(item, settings, secrets_mode, result, ext)
            if path is None:
                continue
            data = render(item.doc, settings.format)
            secret = item.resource == "secrets" and not item.group
            write_new(staging / path, data, secret, made)
            sections[section(item)].write(path + "\n")
            result.objects += 1
        with open(staging / INDEX_NAME, "w", encoding="utf-8") as out:
            out.write(f"{INDEX_HEAD}: the files kstream export wrote, in apply order\n")
            for f in sections:
                f.seek(0)
                shutil.copyfileobj(f, out)


def place(
    item: Item,
    settings: ExportSettings,
    secrets_mode: str | None,
    result: ExportResult,
    ext: str,
) -> str | None:
    """Clean the item (unless --keep) and say where it goes; None when it is
    left out (counted in the result)."""
    doc, md = item.doc, _meta(item.doc)
    what = f"{item.resource}{'.' + item.group if item.group else ''} " + (
        f"{md.get('namespace')}/{md.get('name')}" if md.get("namespace") else str(md.get("name"))
    )
    if not settings.all:
        reason = neat.left_out(doc, item.group)
        if reason is not None:
            result.leave_out(reason, what)
            return None
    if (
        item.group == ""
        and item.resource == "secrets"
        and (
            (secrets_mode == "redact" and neat.has_values(doc))
            or (secrets_mode is None and neat.redacted_secret(doc))
        )
    ):
        if not settings.placeholders:
            result.secrets_withheld += 1
            return None
        result.placeholders += 1
    if not settings.keep:
        neat.clean(doc, item.group)
    return relative_path(item, ext)


def write_new(path: Path, data: bytes, secret: bool, made: list[Path] | None = None) -> None:
    """Create `path` (never over an existing file); `made`: the last directory
    made, to skip making it again for the next object of the same resource."""
    if made is None or made[0] != path.parent:
        path.parent.mkdir(parents=True, exist_ok=True)
        if made is not None:
            made[0] = path.parent
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
    except FileExistsError:
        raise OutputError(
            f"two objects would be written to {path.name} in {path.parent.name}/: the "
            "snapshot holds the same object twice, or the file system ignores case"
        ) from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)


# --------------------------------------------------------------------------- the directory


def read_index(target: Path) -> list[str] | None:
    """The files a previous export listed (None: the directory has no index)."""
    try:
        f: IO[str] = open(target / INDEX_NAME, encoding="utf-8")  # noqa: SIM115
    except FileNotFoundError:
        return None
    except OSError as e:
        raise OutputError(f"{target / INDEX_NAME}: {e.strerror}") from None
    with f:
        head = f.readline()
        if not head.startswith(INDEX_HEAD):
            raise UsageError(
                f"{target / INDEX_NAME} was not written by kstream export; kstream "
                "replaces only its own files: choose another directory"
            )
        return [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#")]


def check_target(output: str, force: bool) -> Path:
    """The directory to write, refused before any work when it must not be:
    `.` and above it, a file in the way, an existing directory without --force."""
    from kstream.store.objstore import is_url

    if not output.strip():
        raise UsageError("-o '': no output directory (an unset shell variable?)")
    if is_url(output):
        raise UsageError(f"-o {output}: export writes a local directory, not object storage")
    target = dir_target(output)
    here = Path.cwd()
    absolute = Path(os.path.abspath(target))
    if absolute == here or absolute in here.parents:
        raise UsageError(
            f"-o {output}: cannot export over the current directory or one above it; "
            "name a directory, e.g. -o export/"
        )
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise OutputError(f"cannot write directory {target}: a file is in the way")
    if target.is_dir():
        listed = read_index(target)
        if any(target.iterdir()) and not force:
            what = "a kstream export" if listed is not None else "files"
            raise OutputError(
                f"{target} holds {what}; use --force to export into it (files kstream "
                "export did not write are never changed or removed)"
            )
    parent = absolute.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {target}: {parent} is not a writable directory")
    return target


def commit(staging: Path, target: Path, result: ExportResult) -> None:
    """Put the staged export in place. A new directory is the staging directory
    renamed; an existing one gets only changed files replaced, the previous
    export's files no longer exported removed, and nothing else touched (a file
    the export would write that it did not write before stops it, unchanged)."""

    def new() -> Iterator[str]:
        return index_files(staging / INDEX_NAME)

    if not target.exists():
        os.rename(staging, target)
        result.written = result.objects
        return
    old = read_index(target) or []
    owned = set(old)
    clashes = [p for p in new() if p not in owned and os.path.lexists(target / p)]
    if clashes:
        raise UsageError(
            f"{target} holds files kstream export did not write where the export goes "
            f"({', '.join(clashes[:3])}{', ...' if len(clashes) > 3 else ''}); "
            "nothing was changed: move them, or choose another directory"
        )
    stale = [p for p in old if not (staging / p).exists() and (target / p).is_file()]
    # crash safety: while files move, the index lists the old and the new ones
    union = staging / (INDEX_NAME + ".union")
    with open(union, "w", encoding="utf-8") as f:
        f.write(f"{INDEX_HEAD}: an export in progress (the old and the new files)\n")
        f.writelines(p + "\n" for p in [*old, *new()])
    os.replace(union, target / INDEX_NAME)
    for p in new():
        src, dst = staging / p, target / p
        if dst.is_file() and not dst.is_symlink() and _same(src, dst):
            result.unchanged += 1
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        result.written += 1
    for p in stale:
        (target / p).unlink(missing_ok=True)
        _prune(target, Path(p).parent)
        result.removed += 1
    os.replace(staging / INDEX_NAME, target / INDEX_NAME)


def index_files(index: Path) -> Iterator[str]:
    with open(index, encoding="utf-8") as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                yield line.rstrip("\n")


def _same(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    return a.read_bytes() == b.read_bytes()


def _prune(top: Path, rel: Path) -> None:
    """Remove the empty directories left above a removed file, up to `top`."""
    while rel.parts:
        try:
            (top / rel).rmdir()
        except OSError:
            return
        rel = rel.parent
