"""A model registry: numbered versions of bundles per repository, with ``active``, ``staged``
and ``backup`` pointers (the dotnet/issue-labeler way), promoted atomically.

Layout::

    REGISTRY/
      OWNER/REPO/
        versions/0001/     a bundle directory (manifest.json, model/) plus registry.json
        versions/0002/     (created, strategy, data hash, size, metrics, source, note)
        pointers.json      {"active": 2, "staged": null, "backup": 1, "updated": "..."}
        .lock              serialises writers of pointers.json (readers never wait)

A version is written completely under a temporary name and renamed into place; nothing
points at it until :meth:`Registry.promote` or :meth:`Registry.stage` replaces
``pointers.json`` in one ``os.replace``. So a crash at any instant leaves the previous
``active`` version in place and loadable: either the old pointers file or the new one is
there, never half of one, and a version is never half-written under its number.

There is no GitHub code here; ``retrain`` and the bot build on this module. The bot checks
:meth:`Registry.token` (a cheap ``stat``) to notice a newly promoted version without a restart.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from labeler.errors import LabelerError

if TYPE_CHECKING:  # the bundle module imports torch-free code only, but loading it is not free
    from labeler.bundle import Bundle

POINTERS = "pointers.json"
INFO = "registry.json"
ROLES = ("active", "staged", "backup")
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class RegistryError(LabelerError):
    """A registry, repository or version that does not exist or cannot be used as asked."""


def check_repo(repo: str) -> str:
    """``OWNER/REPO`` with GitHub's characters only (the name becomes two directories)."""
    if not isinstance(repo, str) or not _REPO.match(repo) or ".." in repo or repo.startswith("."):
        raise RegistryError(f"repository must be OWNER/REPO (letters, digits, . _ -), got {repo!r}")
    return repo


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``path`` so that readers see the old file or the new one, never a partial one."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class Version:
    """One stored model: ``path`` is a bundle directory (``Bundle.load(path)`` works)."""

    repo: str
    number: int
    path: Path
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        """``OWNER/REPO@N``: how the bot records which model scored an issue."""
        return f"{self.repo}@{self.number}"

    def load(self) -> "Bundle":
        from labeler.bundle import Bundle

        return Bundle.load(self.path)


class Registry:
    """Versions and pointers of every repository under ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # -- reading --------------------------------------------------------------------------
    def _repo_dir(self, repo: str) -> Path:
        return self.root / check_repo(repo)

    def repos(self) -> list[str]:
        """Every ``OWNER/REPO`` holding at least one version, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(f"{v.parent.parent.name}/{v.parent.name}" for v in self.root.glob("*/*/versions")
                      if v.is_dir() and any(self._numbers(v)))

    @staticmethod
    def _numbers(versions_dir: Path) -> list[int]:
        return sorted(int(p.name) for p in versions_dir.iterdir() if p.name.isdigit() and p.is_dir())

    def versions(self, repo: str) -> list[Version]:
        """All versions of ``repo``, oldest first."""
        vdir = self._repo_dir(repo) / "versions"
        return [self.get(repo, n) for n in self._numbers(vdir)] if vdir.is_dir() else []

    def get(self, repo: str, number: int) -> Version:
        path = self._repo_dir(repo) / "versions" / f"{int(number):04d}"
        if not path.is_dir():
            raise RegistryError(f"{repo} has no version {number} in {self.root}")
        try:
            info = json.loads((path / INFO).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            info = {}  # a bundle copied in by hand: still a version, just undescribed
        return Version(repo, int(number), path, info)

    def pointers(self, repo: str) -> dict[str, int | None]:
        """``{"active": N|None, "staged": N|None, "backup": N|None}``."""
        path = self._repo_dir(repo) / POINTERS
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        except (OSError, json.JSONDecodeError) as exc:  # cannot happen through this module
            raise RegistryError(f"unreadable {path}: {exc}") from None
        return {role: data.get(role) for role in ROLES}

    def _pointed(self, repo: str, role: str) -> Version | None:
        number = self.pointers(repo)[role]
        return None if number is None else self.get(repo, number)

    def active(self, repo: str) -> Version | None:
        return self._pointed(repo, "active")

    def staged(self, repo: str) -> Version | None:
        return self._pointed(repo, "staged")

    def backup(self, repo: str) -> Version | None:
        return self._pointed(repo, "backup")

    def token(self, repo: str) -> str:
        """Changes whenever ``repo``'s pointers change (every write is a new file, so a new
        inode); costs one ``stat``. ``""`` while the repository has no pointers yet."""
        try:
            st = (self._repo_dir(repo) / POINTERS).stat()
        except FileNotFoundError:
            return ""
        return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"

    # -- writing --------------------------------------------------------------------------
    def add(self, repo: str, bundle: "Bundle | str | Path", *, metrics: dict[str, Any] | None = None,
            source: str = "", note: str = "") -> Version:
        """Store ``bundle`` (a :class:`~labeler.bundle.Bundle`, or a bundle directory to copy)
        as the next numbered version of ``repo``. Nothing points at it yet."""
        from labeler.bundle import Bundle

        vdir = self._repo_dir(repo) / "versions"
        vdir.mkdir(parents=True, exist_ok=True)
        tmp = vdir / f".new-{uuid.uuid4().hex}"
        try:
            if isinstance(bundle, Bundle):
                bundle.save(tmp)
            else:
                bundle = Bundle.load(bundle)  # refuse anything that is not a loadable bundle
                bundle.save(tmp)
            manifest = bundle.manifest
            info = {
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "strategy": manifest.get("strategy"),
                "data_hash": (manifest.get("training") or {}).get("sha256"),
                "n_train": (manifest.get("training") or {}).get("n"),
                "labels": manifest.get("labels"),
                "size_bytes": _dir_size(tmp),
                "metrics": metrics or {},
                "validation": manifest.get("validation") or {},
                "source": source,
                "note": note,
            }
            _write_json_atomic(tmp / INFO, info)
            while True:  # another writer may take a number first: os.rename then fails, try the next
                numbers = self._numbers(vdir)
                number = (numbers[-1] if numbers else 0) + 1
                try:
                    os.rename(tmp, vdir / f"{number:04d}")
                    break
                except OSError:
                    if not (vdir / f"{number:04d}").exists():
                        raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return Version(repo, number, vdir / f"{number:04d}", info)

    def _update(self, repo: str, change) -> dict[str, int | None]:
        """Read-modify-write the pointers under the repository's lock, atomically replaced."""
        rdir = self._repo_dir(repo)
        if not rdir.is_dir():
            raise RegistryError(f"{repo} has no versions in {self.root}")
        with FileLock(str(rdir / ".lock"), timeout=60):
            pointers = self.pointers(repo)
            change(pointers)
            _write_json_atomic(rdir / POINTERS, {
                **pointers, "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        return pointers

    def stage(self, repo: str, number: int) -> Version:
        """Mark ``number`` as the candidate waiting for promotion."""
        version = self.get(repo, number)
        self._update(repo, lambda p: p.update(staged=version.number))
        return version

    def promote(self, repo: str, number: int | None = None) -> Version:
        """Make ``number`` (default: the staged version) active; the active one becomes the
        backup. One atomic write: a crash leaves either the old or the new pointers."""
        if number is None:
            number = self.pointers(repo)["staged"]
            if number is None:
                raise RegistryError(f"{repo} has no staged version to promote; name one")
        version = self.get(repo, number)

        def change(p: dict[str, int | None]) -> None:
            if p["active"] == version.number:
                return
            p["backup"], p["active"] = p["active"], version.number
            if p["staged"] == version.number:
                p["staged"] = None

        self._update(repo, change)
        return version

    def rollback(self, repo: str) -> Version:
        """Swap ``active`` and ``backup`` (a second rollback undoes the first)."""
        pointers = self.pointers(repo)
        if pointers["backup"] is None:
            raise RegistryError(f"{repo} has no backup version to roll back to")
        backup = self.get(repo, pointers["backup"])

        def change(p: dict[str, int | None]) -> None:
            if p["backup"] is None:
                raise RegistryError(f"{repo} has no backup version to roll back to")
            p["active"], p["backup"] = p["backup"], p["active"]

        self._update(repo, change)
        return backup

    def roles(self, repo: str) -> dict[int, list[str]]:
        """Version number -> the pointer names on it (for listings)."""
        out: dict[int, list[str]] = {}
        for role, number in self.pointers(repo).items():
            if number is not None:
                out.setdefault(number, []).append(role)
        return out


__all__ = ["POINTERS", "ROLES", "Registry", "RegistryError", "Version", "check_repo"]
