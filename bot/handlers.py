"""The bot's webhook handlers: one decorated function per event and action (see
:mod:`bot.routing`). To handle a new event, add a function here; the web app and the worker
both ask :data:`router`, so nothing else changes.

Each handler gets the worker (``worker.store``, ``worker.github``, ``worker.label``) and the
delivery, and returns ``(status, result)``. The checks are plain functions of the payload:
what they refuse is answered ``200 ignored`` by the web app and never queued.

``ping`` is not here: it is the webhook's handshake, answered by the web app itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot import sansio
from bot.routing import Router
from bot.sansio import Delivery

if TYPE_CHECKING:  # the worker imports this module; handlers only call it
    from bot.worker import Worker

Result = tuple[str, dict[str, Any]]

router = Router()


# -- checks: payload only, never raise ------------------------------------------------------

def about_an_issue(d: Delivery, bot_logins: frozenset[str]) -> str | None:
    if d.repo is None or d.issue_number is None:
        return f"{d.event}.{d.action} without a repository or issue number"
    return None


def title_or_body_changed(d: Delivery, bot_logins: frozenset[str]) -> str | None:
    reason = about_an_issue(d, bot_logins)
    if reason:
        return reason
    changes = d.payload.get("changes") if isinstance(d.payload.get("changes"), dict) else {}
    if "title" not in changes and "body" not in changes:
        return f"{d.event}.edited without a title or body change"
    return None


def label_changed_by_a_human(d: Delivery, bot_logins: frozenset[str]) -> str | None:
    reason = about_an_issue(d, bot_logins)
    if reason:
        return reason
    label = d.payload.get("label")
    if not isinstance(label, dict) or not isinstance(label.get("name"), str):
        return f"{d.event}.{d.action} without a label"
    if sansio.is_bot_user(d.payload.get("sender"), bot_logins):
        return f"{d.event}.{d.action} by a bot"
    return None


# -- issues and pull requests: labelling ----------------------------------------------------

@router.register("issues", "opened", check=about_an_issue)
@router.register("issues", "reopened", check=about_an_issue)
@router.register("pull_request", "opened", check=about_an_issue)
@router.register("pull_request", "reopened", check=about_an_issue)
def issue_opened(worker: Worker, d: Delivery) -> Result:
    return worker.label(d)


@router.register("issues", "edited", check=title_or_body_changed)
@router.register("pull_request", "edited", check=title_or_body_changed)
def issue_edited(worker: Worker, d: Delivery) -> Result:
    return worker.label(d)


# -- label changes by people: never undone, recorded as corrections ------------------------

def _record_human_label(worker: Worker, d: Delivery, action: str) -> Result:
    repo, number, issue = d.repo, d.issue_number, d.issue or {}
    label = d.payload["label"]["name"]
    dry = worker.github.dry_run
    if action == "added" and label in worker.store.bot_labels(repo, number, dry_run=dry):
        # With a personal token GitHub reports the bot's own labels as added by that user.
        return "ignored", {"reason": f"{label!r} was added by the bot"}
    sender = d.payload.get("sender") if isinstance(d.payload.get("sender"), dict) else {}
    title, body = sansio.issue_title_body(issue)
    after_bot = worker.store.bot_acted(repo, number, dry_run=dry)
    worker.store.record_human_label(
        delivery_id=d.delivery_id, repo=repo, issue_number=number, label=label, action=action,
        actor=sender.get("login"), after_bot=after_bot, title=title, body=body,
        labels_after=sansio.label_names(issue))
    what = "correction" if after_bot else "human label change"
    return "done", {"recorded": what, "label": label, "action": action}


@router.register("issues", "labeled", check=label_changed_by_a_human)
@router.register("pull_request", "labeled", check=label_changed_by_a_human)
def label_added(worker: Worker, d: Delivery) -> Result:
    return _record_human_label(worker, d, "added")


@router.register("issues", "unlabeled", check=label_changed_by_a_human)
@router.register("pull_request", "unlabeled", check=label_changed_by_a_human)
def label_removed(worker: Worker, d: Delivery) -> Result:
    return _record_human_label(worker, d, "removed")


# -- installations: which repositories the App serves ---------------------------------------

def _repo_names(payload: dict[str, Any], key: str) -> list[str]:
    items = payload.get(key) or []
    return [r["full_name"] for r in items if isinstance(r, dict) and isinstance(r.get("full_name"), str)]


@router.register("installation", "created")
@router.register("installation", "unsuspend")
@router.register("installation", "new_permissions_accepted")
def installation_added(worker: Worker, d: Delivery) -> Result:
    repos = _repo_names(d.payload, "repositories")
    worker.store.set_served(repos, d.installation_id, True)
    return "done", {"installation": d.installation_id, "added": repos}


@router.register("installation", "deleted")
@router.register("installation", "suspend")
def installation_removed(worker: Worker, d: Delivery) -> Result:
    if d.installation_id is not None:
        worker.store.deactivate_installation(d.installation_id)
    return "done", {"installation": d.installation_id, "served": "none"}


@router.register("installation_repositories")
def installation_repositories(worker: Worker, d: Delivery) -> Result:
    added, removed = _repo_names(d.payload, "repositories_added"), _repo_names(d.payload, "repositories_removed")
    worker.store.set_served(added, d.installation_id, True)
    worker.store.set_served(removed, d.installation_id, False)
    return "done", {"installation": d.installation_id, "added": added, "removed": removed}
