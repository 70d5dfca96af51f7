"""The bot's commands (serve's startup checks, send-example, export-corrections) and the
predictor's model resolution (bundle, named bundle, zero-shot fallback cached per label set)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bot.cli import app, example_delivery
from bot.predictor import BundlePredictor, PredictorUnavailable
from bot.sansio import parse_delivery
from bot_helpers import TEST_STRATEGY, KeywordStrategy, deliver, issue_payload

runner = CliRunner()


def test_serve_without_secret_is_a_startup_error(monkeypatch, tmp_path):
    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("ISSUE_LABELER_DATABASE_URL", f"sqlite:///{tmp_path / 's.sqlite3'}")
    result = runner.invoke(app, ["serve", "--port", "0"])
    assert result.exit_code == 2 and "GITHUB_WEBHOOK_SECRET" in result.output


def test_serve_rejects_half_app_credentials(monkeypatch):
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "s")
    monkeypatch.setenv("GITHUB_APP_ID", "1")
    monkeypatch.delenv("GITHUB_PRIVATE_KEY", raising=False)
    result = runner.invoke(app, ["serve", "--port", "0"])
    assert result.exit_code == 2 and "GITHUB_PRIVATE_KEY" in result.output


def test_send_example_prints_a_correctly_signed_curl(monkeypatch):
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "s3cret")
    result = runner.invoke(app, ["send-example", "--print", "--url", "http://127.0.0.1:9/webhook"])
    assert result.exit_code == 0 and result.output.startswith("curl ")
    assert "X-Hub-Signature-256: sha256=" in result.output
    headers, body = example_delivery("s3cret")
    assert parse_delivery(headers, body, "s3cret").action == "opened"


def test_send_example_needs_a_secret(monkeypatch):
    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET", raising=False)
    assert runner.invoke(app, ["send-example", "--print"]).exit_code == 2


def test_export_corrections_jsonl(store, worker, tmp_path):
    human = {"login": "bob", "type": "User"}
    deliver(store, worker, issue_payload(title="a bug"))
    deliver(store, worker, issue_payload("unlabeled", title="a bug", body=None, labels=[], label={"name": "bug"},
                                         sender=human))
    deliver(store, worker, issue_payload("labeled", title="a bug", body=None, labels=["question"],
                                         label={"name": "question"}, sender=human))
    out = tmp_path / "corrections.jsonl"
    result = runner.invoke(app, ["export-corrections", "-o", str(out), "--database-url", store.url])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1
    assert rows[0]["text"] == "a bug\n\n" and rows[0]["labels"] == ["question"]
    assert rows[0]["removed"] == ["bug"] and rows[0]["added"] == ["question"] and rows[0]["bot_applied"] == ["bug"]
    # to stdout as well
    result = runner.invoke(app, ["export-corrections", "--database-url", store.url])
    assert json.loads(result.stdout.splitlines()[0])["number"] == 7


# -- predictor ---------------------------------------------------------------------------------

def test_fallback_is_built_once_per_label_set():
    p = BundlePredictor(fallback_strategy=TEST_STRATEGY)
    before = KeywordStrategy.instances
    a = p.score("a bug", {"bug": "broken", "question": None})
    p.score("another bug", {"question": None, "bug": "broken"})
    assert KeywordStrategy.instances == before + 1
    p.score("a bug", {"bug": "broken"})
    assert KeywordStrategy.instances == before + 2
    assert a.chosen == ["bug"] and a.scores["bug"] == pytest.approx(0.9)
    assert "no trained bundle" in a.model and "no trained bundle" in p.describe()


def test_trained_bundle_and_named_bundles(tmp_path, toy):
    from labeler.bundle import Bundle

    texts, label_sets, labels, descriptions = toy
    Bundle.train("naive_bayes", texts, label_sets, labels=labels, descriptions=descriptions).save(tmp_path / "nb")
    p = BundlePredictor(tmp_path / "nb", models_dir=tmp_path)
    scored = p.score("Crash with a traceback in the reader", {"anything": None})
    assert set(scored.scores) == set(labels) and scored.model.startswith("naive_bayes bundle nb")
    assert p.score("docs typo", {}, model="nb").model.startswith("naive_bayes")
    with pytest.raises(PredictorUnavailable):
        p.score("x", {}, model="missing")
    with pytest.raises(PredictorUnavailable, match="ISSUE_LABELER_MODELS_DIR"):
        BundlePredictor(tmp_path / "nb").score("x", {}, model="nb")


def test_bad_bundle_or_no_labels_is_unavailable(tmp_path):
    with pytest.raises(PredictorUnavailable):
        BundlePredictor(tmp_path / "nope").score("x", {"bug": None})
    with pytest.raises(PredictorUnavailable):
        BundlePredictor(fallback_strategy=TEST_STRATEGY).score("x", {})


def test_settings_from_env_and_dry_run_labels(tmp_path):
    from bot.github import DEFAULT_LABELS, DryRunGitHub, PyGithubClient
    from bot.settings import Settings, SettingsError, build_github

    s = Settings.from_env({})
    assert s.dry_run and s.webhook_secret is None
    assert build_github(s).labels("o/r", None) == DEFAULT_LABELS
    config = tmp_path / "issue-labeler.yml"
    config.write_text("mode: suggest\nrepository_labels:\n  crash: The program stops\n  docs: null\n")
    gh = build_github(Settings.from_env({"ISSUE_LABELER_CONFIG": str(config)}))
    assert isinstance(gh, DryRunGitHub) and gh.labels("o/r", None) == {"crash": "The program stops", "docs": None}
    assert "mode: suggest" in gh.config_text("o/r", None)
    assert isinstance(build_github(Settings.from_env({"GITHUB_TOKEN": "t"})), PyGithubClient)
    with pytest.raises(SettingsError):
        Settings.from_env({"ISSUE_LABELER_MAX_ATTEMPTS": "lots"})
    with pytest.raises(SettingsError):
        build_github(Settings.from_env({"GITHUB_APP_ID": "1", "GITHUB_PRIVATE_KEY": str(tmp_path / "none.pem")}))
    with pytest.raises(SettingsError):
        Settings.from_env({"ISSUE_LABELER_CONFIG": str(tmp_path / "none.yml")}).local_config_text()


def test_predictor_check(tmp_path):
    assert BundlePredictor(fallback_strategy=TEST_STRATEGY).check() is None
    assert "not available" in BundlePredictor(fallback_strategy="no_such_strategy").check()
    with pytest.raises(PredictorUnavailable):
        BundlePredictor(tmp_path / "missing").check()


def test_serve_refuses_a_broken_bundle(monkeypatch, tmp_path):
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "s")
    monkeypatch.setenv("ISSUE_LABELER_DATABASE_URL", f"sqlite:///{tmp_path / 's.sqlite3'}")
    monkeypatch.setenv("ISSUE_LABELER_BUNDLE", str(tmp_path / "missing"))
    result = runner.invoke(app, ["serve", "--port", "0"])
    assert result.exit_code == 2 and "bundle" in result.output


def test_the_web_app_describes_the_model_without_building_a_predictor(monkeypatch, tmp_path):
    import bot.predictor
    from bot.app import create_app_from_env

    def refuse(*a, **k):
        raise AssertionError("the web app needs no predictor")

    monkeypatch.setattr(bot.predictor.BundlePredictor, "__init__", refuse)
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "s")
    monkeypatch.setenv("ISSUE_LABELER_DATABASE_URL", f"sqlite:///{tmp_path / 's.sqlite3'}")
    monkeypatch.setenv("ISSUE_LABELER_QUEUE_URL", f"sqlite:///{tmp_path / 'q.sqlite3'}")
    monkeypatch.setenv("ISSUE_LABELER_BUNDLE", str(tmp_path / "nb"))
    health = create_app_from_env().test_client().get("/healthz").json
    assert health["model"] == f"bundle {tmp_path / 'nb'}"
