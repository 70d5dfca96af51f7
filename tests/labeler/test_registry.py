"""The model registry: numbered versions, atomic promotion, rollback, crash safety, the CLI."""

from __future__ import annotations

import json
import os
import threading

import pytest
from typer.testing import CliRunner

from bot.cli import app
from labeler.bundle import Bundle
from labeler.registry import Registry, RegistryError

REPO = "octo/widgets"


@pytest.fixture
def bundle(toy):
    texts, label_sets, labels, descriptions = toy
    return Bundle.train("naive_bayes", texts, label_sets, labels=labels, descriptions=descriptions,
                        valid=(texts, label_sets))


def test_versions_are_numbered_and_described(tmp_path, bundle):
    reg = Registry(tmp_path)
    assert reg.repos() == [] and reg.active(REPO) is None and reg.token(REPO) == ""
    v1 = reg.add(REPO, bundle, metrics={"micro_f1": 0.7}, source="test")
    v2 = reg.add(REPO, bundle)
    assert (v1.number, v2.number) == (1, 2) and v2.name == f"{REPO}@2"
    assert reg.repos() == [REPO] and [v.number for v in reg.versions(REPO)] == [1, 2]
    info = reg.get(REPO, 1).info
    assert info["strategy"] == "naive_bayes" and info["metrics"] == {"micro_f1": 0.7}
    assert info["data_hash"] == bundle.manifest["training"]["sha256"] and info["size_bytes"] > 0
    assert reg.pointers(REPO) == {"active": None, "staged": None, "backup": None}  # added, not pointed at
    assert reg.get(REPO, 2).load().labels == bundle.labels
    with pytest.raises(RegistryError, match="no version 9"):
        reg.get(REPO, 9)
    with pytest.raises(RegistryError, match="OWNER/REPO"):
        reg.add("../etc", bundle)


def test_promote_and_rollback_move_the_pointers(tmp_path, bundle):
    reg = Registry(tmp_path)
    for _ in range(3):
        reg.add(REPO, bundle)
    with pytest.raises(RegistryError, match="no staged version"):
        reg.promote(REPO)
    reg.promote(REPO, 1)
    assert reg.pointers(REPO) == {"active": 1, "staged": None, "backup": None}
    token = reg.token(REPO)
    reg.stage(REPO, 2)
    assert reg.promote(REPO).number == 2  # the staged one
    assert reg.pointers(REPO) == {"active": 2, "staged": None, "backup": 1}
    assert reg.token(REPO) != token
    assert reg.rollback(REPO).number == 1
    assert reg.pointers(REPO) == {"active": 1, "staged": None, "backup": 2}
    assert reg.rollback(REPO).number == 2  # a second rollback undoes the first
    reg.promote(REPO, 2)  # already active: nothing moves
    assert reg.pointers(REPO) == {"active": 2, "staged": None, "backup": 1}


def test_rollback_without_backup_is_refused(tmp_path, bundle):
    reg = Registry(tmp_path)
    reg.promote(REPO, reg.add(REPO, bundle).number)
    with pytest.raises(RegistryError, match="no backup"):
        reg.rollback(REPO)


def test_a_crash_before_the_pointer_swap_leaves_the_active_model(tmp_path, bundle, monkeypatch):
    """A version written completely, then the process dies while replacing pointers.json:
    the old active version is still the one pointed at, and it loads."""
    reg = Registry(tmp_path)
    reg.promote(REPO, reg.add(REPO, bundle).number)
    new = reg.add(REPO, bundle)

    def crash(src, dst):
        raise KeyboardInterrupt("power cut")  # BaseException, like a kill

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        reg.promote(REPO, new.number)
    monkeypatch.undo()
    assert reg.pointers(REPO)["active"] == 1 and reg.active(REPO).load().labels == bundle.labels
    assert not [p for p in (tmp_path / REPO).iterdir() if p.name.endswith(".tmp")]  # no debris
    assert reg.promote(REPO, new.number).number == 2  # and the next try goes through


def test_a_crash_while_writing_a_version_leaves_no_number(tmp_path, bundle, monkeypatch):
    reg = Registry(tmp_path)
    reg.promote(REPO, reg.add(REPO, bundle).number)

    def crash(self, directory):
        (directory).mkdir(parents=True)
        (directory / "manifest.json").write_text("{half")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(Bundle, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        reg.add(REPO, bundle)
    monkeypatch.undo()
    assert [v.number for v in reg.versions(REPO)] == [1]
    assert not [p for p in (tmp_path / REPO / "versions").iterdir() if p.name.startswith(".")]
    assert reg.add(REPO, bundle).number == 2


def test_readers_always_see_a_loadable_active_version(tmp_path, bundle):
    """Promotions and rollbacks in a loop while another thread keeps reading the pointers."""
    reg = Registry(tmp_path)
    for _ in range(2):
        reg.add(REPO, bundle)
    reg.promote(REPO, 1)
    stop, seen, errors = threading.Event(), set(), []

    def read():
        while not stop.is_set():
            try:
                active = Registry(tmp_path).active(REPO)
                assert active is not None and (active.path / "manifest.json").is_file()
                seen.add(active.number)
            except Exception as exc:  # pragma: no cover - the failure being tested for
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(100):
        reg.promote(REPO, 2 if i % 2 == 0 else 1)
    stop.set()
    reader.join()
    assert not errors and seen <= {1, 2}


def test_bundle_save_over_an_existing_bundle(tmp_path, bundle):
    """Saving over a bundle replaces it with no delete of the old tree before the new is in."""
    target = tmp_path / "b"
    bundle.save(target)
    bundle.save(target)
    assert Bundle.load(target).labels == bundle.labels
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_models_cli(tmp_path, bundle):
    runner = CliRunner()
    path = bundle.save(tmp_path / "bundle")
    registry = tmp_path / "registry"
    out = runner.invoke(app, ["models", "add", str(registry), str(path), "--repo", REPO])
    assert out.exit_code == 0, out.output
    assert "added version 1 (staged)" in out.output
    runner.invoke(app, ["models", "add", str(registry), str(path), "--repo", REPO])
    out = runner.invoke(app, ["models", "promote", str(registry), "1"])
    assert out.exit_code == 0 and "version 1 is active" in out.output
    out = runner.invoke(app, ["models", "promote", str(registry)])  # the staged one: 2
    assert out.exit_code == 0 and "version 2 is active (backup: 1)" in out.output
    out = runner.invoke(app, ["models", "list", str(registry)])
    assert out.exit_code == 0, out.output
    lines = [l for l in out.output.splitlines() if l.strip()[:1].isdigit()]
    assert "active" in lines[1] and "backup" in lines[0] and "naive_bayes" in lines[1]
    listed = json.loads(runner.invoke(app, ["models", "list", str(registry), "--json"]).output)
    assert [r["roles"] for r in listed[REPO]] == [["backup"], ["active"]]
    shown = json.loads(runner.invoke(app, ["models", "show", str(registry)]).output)
    assert shown["version"] == 2 and shown["roles"] == ["active"] and shown["strategy"] == "naive_bayes"
    out = runner.invoke(app, ["models", "rollback", str(registry), "--repo", REPO])
    assert out.exit_code == 0 and "version 1 is active again (backup: 2)" in out.output
    out = runner.invoke(app, ["models", "rollback", str(tmp_path / "nowhere")])
    assert out.exit_code == 2 and "no registry" in out.output
    out = runner.invoke(app, ["models", "show", str(registry), "7"])
    assert out.exit_code == 2 and "no version 7" in out.output
