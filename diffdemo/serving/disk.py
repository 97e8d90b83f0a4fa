"""How much disk results and uploads may take: entries older than the age bound go, then the largest holder's
oldest files until the size bound holds (each entry recorded as its writer's address, so one address filling the
disk loses its own files first)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from diffdemo.serving.deployment import limits

_prune_lock = threading.Lock()


def _entries(folder: Path) -> list[tuple[float, int, Path]]:
    """(mtime, bytes, path) of each file or sub-folder directly in ``folder``."""
    out = []
    for entry in folder.iterdir() if folder.is_dir() else []:
        try:
            if entry.is_dir() and not entry.is_symlink():
                files = [f.stat() for f in entry.rglob("*") if f.is_file()]
                size = sum(f.st_size for f in files)
                mtime = max([f.st_mtime for f in files], default=entry.stat().st_mtime)
            else:
                st = entry.stat()
                size, mtime = st.st_size, st.st_mtime
        except OSError:
            continue
        out.append((mtime, size, entry))
    return out


_owners: dict[str, str] = {}  # a result folder or upload (a direct child of a pruned folder) -> its holder's address
_owners_lock = threading.Lock()


def own(path, holder: str) -> None:
    """Record who wrote ``path`` (a results folder, an upload's folder): pruning weighs holders, not files."""
    with _owners_lock:
        _owners[str(path)] = holder
        while len(_owners) > 100_000:
            _owners.pop(next(iter(_owners)))


def holder_of(path) -> str:
    return _owners.get(str(path), "shared")


def prune(
    folders: list[Path],
    max_bytes: int | None = None,
    max_age_s: float | None = None,
    now=None,
    writer: str | None = None,
) -> int:
    """Delete results older than ``max_age_s``; then, while all ``folders`` together hold more than ``max_bytes``,
    the oldest entry of the largest holder (an address, or "shared" for what nobody is recorded as writing), so one
    address filling the disk loses its own files first. With ``writer`` (an upload) only the writer's own files
    are deleted: an upload never evicts another user's fresh results. Returns the bytes held afterwards (over the
    bound when the writer's files alone could not make room). Entries are the folders' direct children."""
    lim = limits()
    max_bytes = lim.results_max_bytes if max_bytes is None else max_bytes
    max_age_s = lim.results_max_age_s if max_age_s is None else max_age_s
    now = time.time() if now is None else now
    folders = [Path(f) for f in folders]
    with _prune_lock:
        entries = sorted(e for folder in folders for e in _entries(folder) if e[2] not in folders)
        total = sum(size for _, size, _ in entries)
        kept = []
        for entry in entries:  # the expired, whoever holds them
            if now - entry[0] > max_age_s and delete_entry(entry[2]):
                total -= entry[1]
            else:
                kept.append(entry)
        while total > max_bytes and kept:
            if writer is not None:
                victim_holder = writer
            else:
                held: dict[str, int] = {}
                for _, size, path in kept:
                    held[holder_of(path)] = held.get(holder_of(path), 0) + size
                victim_holder = max(held, key=held.get)
            pool = [e for e in kept if holder_of(e[2]) == victim_holder]
            if not pool:
                break
            kept.remove(pool[0])  # that holder's oldest
            if delete_entry(pool[0][2]):
                total -= pool[0][1]
        return total


def delete_entry(path: Path) -> bool:
    try:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    except OSError:
        return False
    with _owners_lock:
        _owners.pop(str(path), None)
    return True
