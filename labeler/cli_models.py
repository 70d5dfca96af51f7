"""``issue-labeler models``: look at and move the pointers of a model registry
(:mod:`labeler.registry`): ``list``, ``show``, ``add``, ``promote``, ``rollback``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from labeler.cli_common import friendly
from labeler.registry import Registry, RegistryError, Version

models_app = typer.Typer(no_args_is_help=True, add_completion=False,
                         help="The model registry: versions per repository with active, staged and backup pointers.")

RegistryArg = Annotated[Path, typer.Argument(help="registry directory")]
RepoOpt = Annotated[Optional[str], typer.Option("--repo", help="OWNER/REPO (needed when the registry holds several)")]


def _open(registry: Path) -> Registry:
    if not registry.is_dir():
        raise RegistryError(f"no registry at {registry} (not a directory)")
    return Registry(registry)


def _repo(reg: Registry, repo: str | None) -> str:
    if repo:
        return repo
    repos = reg.repos()
    if len(repos) == 1:
        return repos[0]
    if not repos:
        raise RegistryError(f"the registry {reg.root} holds no versions")
    raise RegistryError(f"the registry holds {len(repos)} repositories ({', '.join(repos)}): pick one with --repo")


def _metrics(version: Version) -> str:
    """Held-out metrics when retrain recorded them, else the bundle's validation metrics."""
    for source, values in (("holdout", version.info.get("metrics") or {}),
                           ("valid", version.info.get("validation") or {})):
        if "micro_f1" in values or "macro_f1" in values:
            return (f"{source} micro {values.get('micro_f1', float('nan')):.3f} "
                    f"macro {values.get('macro_f1', float('nan')):.3f}")
    return "-"


def _row(version: Version, roles: list[str]) -> dict[str, Any]:
    info = version.info
    return {
        "version": version.number, "roles": roles, "created": info.get("created", "?"),
        "strategy": info.get("strategy", "?"), "n_train": info.get("n_train"),
        "data_hash": (info.get("data_hash") or "?")[:12], "size_mb": round((info.get("size_bytes") or 0) / 1e6, 2),
        "metrics": _metrics(version), "source": info.get("source", ""),
    }


@models_app.command("list")
@friendly
def list_(registry: RegistryArg, repo: RepoOpt = None,
          as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False):
    """Every version (of one repository, or of all), marked active / staged / backup."""
    reg = _open(registry)
    repos = [repo] if repo else reg.repos()
    rows = {r: [_row(v, reg.roles(r).get(v.number, [])) for v in reg.versions(r)] for r in repos}
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not any(rows.values()):
        typer.echo(f"{registry}: no versions")
    for name, versions in rows.items():
        typer.echo(f"{name}")
        for r in versions:
            typer.echo(f"  {r['version']:>4}  {','.join(r['roles']) or '-':<14} {r['created']:<25} "
                       f"{r['strategy']:<12} n={r['n_train'] if r['n_train'] is not None else '?':<6} "
                       f"data {r['data_hash']:<12} {r['size_mb']:>8.2f} MB  {r['metrics']}")


@models_app.command()
@friendly
def show(registry: RegistryArg, version: Annotated[Optional[int], typer.Argument(help="version number (default: the active one)")] = None,
         repo: RepoOpt = None):
    """One version's record (created, strategy, data hash, size, metrics) as JSON."""
    reg = _open(registry)
    name = _repo(reg, repo)
    if version is None:
        found = reg.active(name)
        if found is None:
            raise RegistryError(f"{name} has no active version; name one (see `models list`)")
    else:
        found = reg.get(name, version)
    typer.echo(json.dumps({"repo": name, "version": found.number, "path": str(found.path),
                           "roles": reg.roles(name).get(found.number, []), **found.info}, indent=2))


@models_app.command()
@friendly
def add(registry: Annotated[Path, typer.Argument(help="registry directory (created if missing)")],
        bundle: Annotated[Path, typer.Argument(help="a bundle directory written by `train`")],
        repo: Annotated[str, typer.Option("--repo", help="OWNER/REPO")],
        stage: Annotated[bool, typer.Option("--stage/--no-stage", help="mark it staged")] = True,
        note: Annotated[str, typer.Option(help="a note kept with the version")] = ""):
    """Copy a trained bundle in as a new version (staged; `promote` makes it active)."""
    reg = Registry(registry)
    version = reg.add(repo, bundle, source=str(bundle), note=note)
    if stage:
        reg.stage(repo, version.number)
    typer.echo(f"{repo}: added version {version.number}{' (staged)' if stage else ''}")


@models_app.command()
@friendly
def promote(registry: RegistryArg, version: Annotated[Optional[int], typer.Argument(help="version number (default: the staged one)")] = None,
            repo: RepoOpt = None):
    """Make a version active (default: the staged one); the active one becomes the backup."""
    reg = _open(registry)
    name = _repo(reg, repo)
    before = reg.pointers(name)["active"]
    promoted = reg.promote(name, version)
    typer.echo(f"{name}: version {promoted.number} is active (backup: {before if before is not None else 'none'})")


@models_app.command()
@friendly
def rollback(registry: RegistryArg, repo: RepoOpt = None):
    """Make the backup version active again (the active one becomes the backup)."""
    reg = _open(registry)
    name = _repo(reg, repo)
    active = reg.rollback(name)
    typer.echo(f"{name}: version {active.number} is active again (backup: {reg.pointers(name)['backup']})")
