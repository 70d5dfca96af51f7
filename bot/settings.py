"""Configuration from environment variables (documented in bot/README.md).

=============================  ==============================================================
``GITHUB_WEBHOOK_SECRET``      the webhook secret; required by the web app (missing: startup
                               error, never an open door)
``GITHUB_APP_ID``              GitHub App id, with ``GITHUB_PRIVATE_KEY`` (PEM text or a file)
``GITHUB_TOKEN``               or one token (personal / fine-grained) instead of an App
``GITHUB_API_URL``             API base URL (GitHub Enterprise Server), default api.github.com
``ISSUE_LABELER_DATABASE_URL`` SQLAlchemy URL of the store, default sqlite:///issue-labeler.sqlite3
``ISSUE_LABELER_QUEUE_URL``    sqlite:///file (default sqlite:///issue-labeler-queue.sqlite3) or
                               redis://host:port/db
``ISSUE_LABELER_BUNDLE``       default model bundle directory (none: zero-shot on repo labels)
``ISSUE_LABELER_MODELS_DIR``   directory of named bundles a repo config may pick (``model:``)
``ISSUE_LABELER_REGISTRY``     model registry directory (``issue-labeler models ...``): a
                               repository with an ``active`` version is scored with it
``ISSUE_LABELER_RELOAD_SECONDS`` how often, at most, the bot checks a repository's registry
                               pointers for a newly promoted version, default 60
``ISSUE_LABELER_CONFIG``       local issue-labeler.yml used when a repository has none (and, in
                               dry-run, its ``repository_labels:`` are the label set)
``ISSUE_LABELER_BOT_LOGINS``   comma-separated logins whose label changes are the bot's own
``ISSUE_LABELER_MAX_ATTEMPTS`` attempts per delivery before it is marked failed, default 5
=============================  ==============================================================

No ``GITHUB_APP_ID``/``GITHUB_PRIVATE_KEY`` and no ``GITHUB_TOKEN``: dry-run mode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from bot.store import DEFAULT_DATABASE_URL

DEFAULT_QUEUE_URL = "sqlite:///issue-labeler-queue.sqlite3"


def mask_url(url: str) -> str:
    """A database or queue URL fit to print: the password replaced by ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))
    except ValueError:
        return "(unprintable URL)"


class SettingsError(Exception):
    """A configuration problem the operator must fix; the message says how."""


@dataclass
class Settings:
    webhook_secret: str | None = None
    app_id: str | None = None
    private_key: str | None = None
    token: str | None = None
    api_url: str = "https://api.github.com"
    database_url: str = DEFAULT_DATABASE_URL
    queue_url: str = DEFAULT_QUEUE_URL
    bundle: str | None = None
    models_dir: str | None = None
    registry: str | None = None
    reload_seconds: float = 60.0
    config_file: str | None = None
    bot_logins: frozenset[str] = field(default_factory=frozenset)
    max_attempts: int = 5
    blank_secret: bool = False  # GITHUB_WEBHOOK_SECRET is set but empty or whitespace

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value and value.strip() else None

        try:
            max_attempts = int(get("ISSUE_LABELER_MAX_ATTEMPTS") or 5)
        except ValueError:
            raise SettingsError("ISSUE_LABELER_MAX_ATTEMPTS must be an integer") from None
        try:
            reload_seconds = float(get("ISSUE_LABELER_RELOAD_SECONDS") or 60)
        except ValueError:
            reload_seconds = -1.0
        if not reload_seconds >= 0:  # also NaN
            raise SettingsError("ISSUE_LABELER_RELOAD_SECONDS must be a number of seconds, 0 or more")
        settings = cls(
            webhook_secret=env.get("GITHUB_WEBHOOK_SECRET") if get("GITHUB_WEBHOOK_SECRET") else None,
            blank_secret=env.get("GITHUB_WEBHOOK_SECRET") is not None and not get("GITHUB_WEBHOOK_SECRET"),
            app_id=get("GITHUB_APP_ID"), private_key=env.get("GITHUB_PRIVATE_KEY") or None,
            token=get("GITHUB_TOKEN"), api_url=get("GITHUB_API_URL") or "https://api.github.com",
            database_url=get("ISSUE_LABELER_DATABASE_URL") or DEFAULT_DATABASE_URL,
            queue_url=get("ISSUE_LABELER_QUEUE_URL") or DEFAULT_QUEUE_URL,
            bundle=get("ISSUE_LABELER_BUNDLE"), models_dir=get("ISSUE_LABELER_MODELS_DIR"),
            registry=get("ISSUE_LABELER_REGISTRY"), reload_seconds=reload_seconds,
            config_file=get("ISSUE_LABELER_CONFIG"),
            bot_logins=frozenset(l.strip() for l in (get("ISSUE_LABELER_BOT_LOGINS") or "").split(",") if l.strip()),
            max_attempts=max_attempts)
        if bool(settings.app_id) != bool(settings.private_key):
            raise SettingsError("GITHUB_APP_ID and GITHUB_PRIVATE_KEY go together: set both or neither")
        return settings

    def require_secret(self) -> str:
        if not self.webhook_secret and self.blank_secret:
            raise SettingsError("GITHUB_WEBHOOK_SECRET is empty or only whitespace: set it to the webhook's secret "
                                "(or unset it and run `issue-labeler serve --generate-secret` to try it locally).")
        if not self.webhook_secret:
            raise SettingsError("GITHUB_WEBHOOK_SECRET is not set: the bot will not accept unsigned webhooks. "
                                "Set it to the secret configured on the GitHub webhook or App "
                                "(or run `issue-labeler serve --generate-secret` to try it locally).")
        return self.webhook_secret

    @property
    def dry_run(self) -> bool:
        return not (self.token or (self.app_id and self.private_key))

    def local_config_text(self) -> str | None:
        if not self.config_file:
            return None
        path = Path(self.config_file).expanduser()
        if not path.is_file():
            raise SettingsError(f"ISSUE_LABELER_CONFIG={self.config_file} is not a file")
        return path.read_text()


def build_github(settings: Settings):
    """PyGithubClient with credentials, DryRunGitHub without."""
    from bot.github import DryRunGitHub, PyGithubClient

    if settings.dry_run:
        import yaml

        text = settings.local_config_text()
        labels = None
        if text:
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError:
                data = None  # the worker reports the bad YAML when it parses the config
            if isinstance(data, dict) and isinstance(data.get("repository_labels"), dict):
                labels = {str(k): (str(v) if v is not None else None) for k, v in data["repository_labels"].items()}
            elif isinstance(data, dict) and isinstance(data.get("repository_labels"), list):
                labels = {str(k): None for k in data["repository_labels"]}
        return DryRunGitHub(labels=labels, config_text=text)
    if settings.app_id:
        key = check_private_key(settings.private_key or "")
        return PyGithubClient(app_id=settings.app_id, private_key=key, base_url=settings.api_url)
    return PyGithubClient(token=settings.token, base_url=settings.api_url)


def check_private_key(value: str) -> str:
    """The App's private key as PEM text; :class:`SettingsError` when it cannot be read or
    does not parse as a private key (found at startup, not at the first delivery)."""
    from cryptography.hazmat.primitives import serialization

    from bot.github import load_private_key

    try:
        key = load_private_key(value)
    except (ValueError, OSError) as exc:
        raise SettingsError(f"GITHUB_PRIVATE_KEY cannot be read: {exc}") from None
    try:
        serialization.load_pem_private_key(key.encode(), password=None)
    except (ValueError, TypeError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise SettingsError(f"GITHUB_PRIVATE_KEY is not a usable PEM private key: {first}") from None
    return key


def check_backends(settings: Settings) -> None:
    """Open the store and the queue once; :class:`SettingsError` (one line, password masked)
    when either is unreachable."""
    from bot.queue import make_huey
    from bot.store import Store

    def line(exc: BaseException) -> str:
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]

    try:
        Store(settings.database_url).engine.dispose()
    except Exception as exc:
        raise SettingsError(f"the database {mask_url(settings.database_url)} cannot be used: {line(exc)}") from None
    try:
        make_huey(settings.queue_url).pending_count()
    except Exception as exc:
        raise SettingsError(f"the queue {mask_url(settings.queue_url)} cannot be used: {line(exc)}") from None


def build_worker(settings: Settings):
    from bot.predictor import BundlePredictor
    from bot.store import Store
    from bot.worker import Worker

    github = build_github(settings)
    predictor = BundlePredictor(settings.bundle, settings.models_dir, registry=settings.registry,
                                reload_seconds=settings.reload_seconds)
    return Worker(Store(settings.database_url), github, predictor,
                  bot_logins=settings.bot_logins, max_attempts=settings.max_attempts,
                  default_config_text=settings.local_config_text())
