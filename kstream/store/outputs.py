"""Output names and targets: which format a name asks for (`output_format`,
`format_of_name`), whether an output may be written or replaced (`check_output`), and
why a directory is not one kstream wrote and may replace (`own_dir_problem`, for
snapshot directories and journals). The writers (kstream/store/writers.py) and the
journal's directory rules build on it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, cast

from kstream.errors import OutputError, UsageError
from kstream.store.format import (
    FORMAT,
    MANIFEST_NAME,
)

OUTPUT_NAMES = (
    "NAME.ndjson (or .jsonl: NDJSON), NAME.ndjson.zst (or .zst, .zstd: zstd archive), "
    "DIR/ (a directory snapshot) or - (NDJSON on stdout)"
)
# what dump writes: NDJSON (file or stdout), a zstd archive, a directory snapshot
OutputFormat = Literal["ndjson", "zst", "dir"]
_EXTENSIONS: dict[str, OutputFormat] = {
    ".zst": "zst",
    ".zstd": "zst",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}


def format_of_name(path: str) -> OutputFormat | None:
    """The format a name says (by its extension, or a trailing slash), or None."""
    if path == "-":
        return "ndjson"
    if path.endswith(("/", os.sep)):
        return "dir"
    for ext, fmt in _EXTENSIONS.items():
        if path.lower().endswith(ext):
            return fmt
    return None


def detect_format(path: str) -> OutputFormat:
    """ndjson | zst | dir, from the output name (`-` is NDJSON to stdout; an
    existing directory is a directory snapshot). A name that says nothing kstream
    writes is refused (UsageError) rather than written as something it is not."""
    if not path.strip():
        raise UsageError("-o '': no output name (an unset shell variable?)")
    fmt = format_of_name(path)
    if fmt is not None:
        return fmt
    from kstream.store.objstore import is_url

    if is_url(path) and path.count("/") < 3:
        return "dir"  # s3://BUCKET: the bucket's top
    if not is_url(path) and Path(path).is_dir():
        return "dir"
    suffix = Path(path).suffix
    if suffix.lower() == ".json":
        stem = path[: -len(suffix)]
        raise UsageError(
            f"-o {path}: kstream writes NDJSON (one object per line), not one JSON "
            f"document: use {stem}.ndjson or {stem}.jsonl"
        )
    if suffix:
        raise UsageError(
            f"-o {path}: kstream does not write {suffix} files; it writes {OUTPUT_NAMES}"
        )
    raise UsageError(
        f"-o {path}: the name does not say what to write: {path}/ for a directory "
        f"snapshot, {path}.ndjson.zst for an archive, {path}.ndjson for NDJSON"
    )


def output_format(path: str, fmt: str) -> OutputFormat:
    """The format to write: `fmt` (ndjson | zst | dir) or, for "auto", the name's.
    An explicit format that contradicts the name's extension is refused."""
    if fmt == "auto" or not path.strip():
        return detect_format(path)
    said = format_of_name(path)
    if said is not None and said != fmt and path != "-":
        raise UsageError(f"-o {path} names a {_WHAT[said]}, but --format is {fmt}")
    return cast("OutputFormat", fmt)  # --format's choices


_WHAT = {"ndjson": "NDJSON file", "zst": "zstd archive", "dir": "directory"}


def check_output(path: str, fmt: OutputFormat, force: bool) -> None:
    """Refuse an output that cannot or must not be written, before any work:
    UsageError (exit 2) for a name that can never work, OutputError (exit 7) for
    one that exists without --force or cannot be written. The writers check again
    when they open the output."""
    if path == "-":
        return
    from kstream.store.objstore import is_url

    if is_url(path):
        check_remote(path, fmt, force)
        return
    if fmt == "dir":
        check_directory_target(dir_target(path), force)
    else:
        check_target(Path(path), force)


def dir_target(path: str) -> Path:
    return Path(path.rstrip("/" + os.sep) or "/")


def manifest_files(manifest: Any) -> set[str] | None:
    """The names a kstream manifest lists, itself included; None when kstream
    did not write it."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None
    listed = {MANIFEST_NAME}
    for r in manifest.get("resources") or []:
        if isinstance(r, dict) and isinstance(r.get("file"), str):
            listed.add(r["file"])
    return listed


def own_dir_problem(
    target: Path, marker: str, foreign_of: Callable[[list[str]], list[str] | None], holds: str
) -> str:
    """Why the directory is not one kstream wrote and may replace ("" if it is
    one, or is empty): `marker` must be there, written by kstream
    (`foreign_of(names)` is None when it is not), and nothing else than what
    kstream writes there (`foreign_of` answers the names of the rest; `holds`
    says what they are in the message)."""
    try:
        entries = sorted(p.name for p in target.iterdir())
    except OSError as e:
        return f"cannot be read ({e.strerror or type(e).__name__})"
    return listing_problem(entries, marker, foreign_of, f"files {holds}")


def listing_problem(
    entries: list[str], marker: str, foreign_of: Callable[[list[str]], list[str] | None], holds: str
) -> str:
    """own_dir_problem on the sorted names a directory (or a prefix) holds."""
    if not entries:
        return ""
    if marker not in entries:
        return f"has no kstream {marker} (it holds {_some(entries)})"
    foreign = foreign_of(entries)
    if foreign is None:
        return f"has a {marker} that kstream did not write"
    if foreign:
        return f"holds {holds} ({_some(foreign)})"
    return ""


def _some(names: list[str]) -> str:
    """The first three names, for a message."""
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def snapshot_dir_problem(target: Path) -> str:
    """Why the directory is not a kstream snapshot that may be replaced ("" if it
    is one, or is empty): a manifest.json written by kstream, and nothing but the
    files it lists."""

    def foreign_of(entries: list[str]) -> list[str] | None:
        try:
            listed = manifest_files(json.loads((target / MANIFEST_NAME).read_bytes()))
        except (OSError, ValueError):
            listed = None
        if listed is None:
            return None
        return [
            n
            for n in entries
            if n not in listed or not (target / n).is_file() or (target / n).is_symlink()
        ]

    return own_dir_problem(target, MANIFEST_NAME, foreign_of, "its manifest does not list")


def check_directory_target(target: Path, force: bool) -> None:
    here = Path.cwd()
    absolute = Path(os.path.abspath(target))
    if absolute == here or absolute in here.parents:
        raise UsageError(
            f"-o {target}: cannot write a snapshot over the current directory or one "
            "above it; name a new directory, e.g. -o snap/"
        )
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise OutputError(f"cannot write directory {target}: a file is in the way")
    if target.is_dir():
        problem = snapshot_dir_problem(target)
        if problem:
            raise UsageError(
                f"{target} is not a kstream snapshot directory: it {problem}; kstream "
                "replaces only its own snapshots, even with --force: choose another name"
            )
        if any(target.iterdir()) and not force:
            raise OutputError(f"{target} holds a kstream snapshot; use --force to replace it")
    parent = target.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {target}: {parent} is not a writable directory")


# =========================================================================== writing


def check_remote(path: str, fmt: OutputFormat, force: bool) -> None:
    """check_output for s3:// names (HEAD the key, or look at the prefix)."""
    from kstream.store import objstore

    loc = objstore.parse(path)
    if fmt != "dir":
        if loc.is_prefix:
            raise UsageError(f"-o {path}: names a prefix; add a file name, or write a directory")
        if objstore.exists(loc, "write") and not force:
            raise OutputError(f"{path} exists; use --force to replace it")
        return
    prefix = loc.as_prefix()
    keys = objstore.list_keys(prefix, "write")
    if not keys:
        return
    names = sorted({k[len(prefix.key) :] for k in keys})

    def foreign_of(entries: list[str]) -> list[str] | None:
        listed = remote_listed(prefix)
        return None if listed is None else [n for n in entries if n not in listed]

    problem = listing_problem(
        names, MANIFEST_NAME, foreign_of, "objects its manifest does not list"
    )
    if problem:
        raise UsageError(
            f"{prefix.url} is not a kstream snapshot directory: it {problem}; kstream "
            "replaces only its own snapshots, even with --force: choose another name"
        )
    if not force:
        raise OutputError(f"{prefix.url} holds a kstream snapshot; use --force to replace it")


def remote_listed(prefix: Any) -> set[str] | None:
    """The names a kstream manifest.json under the prefix lists (with itself),
    or None when it is not kstream's."""
    from kstream.store import objstore

    obj = objstore.RemoteObject.open(prefix.child(MANIFEST_NAME))
    if obj is None:
        return set()
    try:
        return manifest_files(json.loads(obj.get(0, obj.size)))
    except ValueError:
        return None


def check_target(path: Path, force: bool) -> None:
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory")
    if path.exists() and not force:
        raise OutputError(f"{path} exists; use --force to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {path}: directory {parent} is not writable")
