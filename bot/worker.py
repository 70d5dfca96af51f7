"""The worker: turns one stored delivery into labels, a suggestion comment, or a record.

:meth:`Worker.process` is what the queue task calls with a ``delivery_id``. It claims the
delivery in the store (so a task run twice, or a redelivery, is processed once), does the
work, and returns an :class:`Outcome`. It never raises: GitHub failures that are worth
retrying come back as ``Outcome("retry", retry_in=...)`` (the queue re-schedules the task;
see :mod:`bot.queue`), and after ``max_attempts`` the delivery is ``failed`` with the error
recorded. Anything unexpected is logged and treated the same way, so no payload can crash
the worker.

The labelling flow for ``issues`` opened / reopened / edited (and ``pull_request`` when the
repo config enables it):

1. read the repository's labels and ``.github/issue-labeler.yml`` (cached for a minute;
   invalid: skip, logged);
2. skip bots / listed authors, mode ``off``, edits after the bot already labelled;
3. wait out the config's ``delay`` (re-queued without counting as an attempt), then re-read
   the issue so labels humans added meanwhile are seen;
4. score the text (:mod:`bot.predictor`), apply the policy (:mod:`bot.policy`);
5. ``apply``: add the labels in one call; ``suggest``: create or edit the one comment;
6. record the prediction, the labels and the comment (:mod:`bot.store`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bot import sansio
from bot.config import RepoConfig, parse_config
from bot.github import COMMENT_MARKER, GitHubClient, PermanentGitHubError, TransientGitHubError
from bot.policy import LabelDecision, decide
from bot.predictor import Predictor, PredictorUnavailable
from bot.store import Claimed, Store

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """``status``: done / ignored / skipped / failed (final), retry / deferred (re-scheduled
    after ``retry_in`` seconds), or not_claimed (already processed or being processed)."""

    status: str
    retry_in: float | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class _Defer(Exception):
    def __init__(self, delay: float):
        self.delay = delay


class Worker:
    def __init__(self, store: Store, github: GitHubClient, predictor: Predictor, *,
                 bot_logins: set[str] | frozenset[str] = frozenset(), max_attempts: int = 5,
                 backoff_base: float = 2.0, backoff_cap: float = 3600.0,
                 default_config_text: str | None = None, repo_cache_seconds: float = 60.0, clock=time.time):
        self.store = store
        self.github = github
        self.predictor = predictor
        self.bot_logins = frozenset(bot_logins)
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.default_config_text = default_config_text
        self.clock = clock
        # (labels, config text) per repository for a minute: a burst of issues costs GitHub
        # one write each instead of two reads and a write. A changed config or a new label
        # is seen within repo_cache_seconds.
        self.repo_cache_seconds = repo_cache_seconds
        self._repo_cache: dict[tuple[str, int | None], tuple[float, dict[str, str | None], str | None]] = {}
        self._cache_lock = threading.Lock()

    def repo_state(self, repo: str, installation_id: int | None) -> tuple[dict[str, str | None], str | None]:
        """The repository's labels (name -> description) and config text, cached briefly."""
        key = (repo, installation_id)
        with self._cache_lock:
            hit = self._repo_cache.get(key)
        if hit and self.clock() - hit[0] < self.repo_cache_seconds:
            return hit[1], hit[2]
        config_text = self.github.config_text(repo, installation_id)
        labels = self.github.labels(repo, installation_id)
        with self._cache_lock:
            if len(self._repo_cache) > 10_000:
                self._repo_cache.clear()
            self._repo_cache[key] = (self.clock(), labels, config_text)
        return labels, config_text

    # -- entry point ----------------------------------------------------------------------
    def process(self, delivery_id: str) -> Outcome:
        claimed = self.store.claim(delivery_id)
        if claimed is None:
            return Outcome("not_claimed")
        try:
            status, result = self._handle(claimed)
        except _Defer as d:
            self.store.defer(delivery_id, d.delay, attempt=False)
            return Outcome("deferred", retry_in=d.delay)
        except TransientGitHubError as exc:
            return self._retry_or_fail(claimed, str(exc), exc.delay)
        except (PermanentGitHubError, PredictorUnavailable) as exc:
            log.warning("delivery %s failed: %s", delivery_id, exc)
            self.store.finish(delivery_id, "failed", error=str(exc))
            return Outcome("failed", error=str(exc))
        except Exception as exc:  # never crash the worker; retry a bounded number of times
            log.exception("delivery %s: unexpected error", delivery_id)
            return self._retry_or_fail(claimed, f"{type(exc).__name__}: {exc}", 0.0)
        self.store.finish(delivery_id, status, result=result)
        return Outcome(status, result=result)

    def _retry_or_fail(self, claimed: Claimed, error: str, delay: float) -> Outcome:
        if claimed.attempts >= self.max_attempts:
            message = f"gave up after {claimed.attempts} attempts: {error}"
            log.error("delivery %s %s", claimed.delivery_id, message)
            self.store.finish(claimed.delivery_id, "failed", error=message)
            return Outcome("failed", error=message)
        backoff = min(self.backoff_cap, self.backoff_base * 2 ** (claimed.attempts - 1))
        wait = min(self.backoff_cap, max(delay, backoff))  # at least what GitHub asked for
        log.info("delivery %s attempt %d failed (%s); retrying in %.1fs", claimed.delivery_id,
                 claimed.attempts, error, wait)
        self.store.defer(claimed.delivery_id, wait, error=error)
        return Outcome("retry", retry_in=wait, error=error)

    # -- dispatch -------------------------------------------------------------------------
    def _handle(self, claimed: Claimed) -> tuple[str, dict[str, Any]]:
        delivery = sansio.Delivery(claimed.delivery_id, claimed.event, claimed.payload)
        r = sansio.route(delivery, self.bot_logins)
        if r.kind == sansio.LABEL:
            return self._label(delivery, claimed)
        if r.kind in (sansio.HUMAN_ADDED, sansio.HUMAN_REMOVED):
            return self._human_label(delivery, r.kind)
        if r.kind == sansio.INSTALLATION:
            return self._installation(delivery)
        return "ignored", {"reason": r.reason}

    # -- installations --------------------------------------------------------------------
    def _installation(self, d: sansio.Delivery) -> tuple[str, dict[str, Any]]:
        p = d.payload
        inst = p.get("installation") if isinstance(p.get("installation"), dict) else {}
        inst_id = inst.get("id") if isinstance(inst.get("id"), int) else None

        def names(key: str) -> list[str]:
            items = p.get(key) or []
            return [r["full_name"] for r in items if isinstance(r, dict) and isinstance(r.get("full_name"), str)]

        action = d.action
        if d.event == "installation":
            if action in ("deleted", "suspend"):
                if inst_id is not None:
                    self.store.deactivate_installation(inst_id)
                return "done", {"installation": inst_id, "served": "none"}
            if action in ("created", "unsuspend", "new_permissions_accepted"):
                repos = names("repositories")
                self.store.set_served(repos, inst_id, True)
                return "done", {"installation": inst_id, "added": repos}
        elif d.event == "installation_repositories":
            added, removed = names("repositories_added"), names("repositories_removed")
            self.store.set_served(added, inst_id, True)
            self.store.set_served(removed, inst_id, False)
            return "done", {"installation": inst_id, "added": added, "removed": removed}
        return "ignored", {"reason": f"{d.event}.{action} is not handled"}

    # -- human label changes --------------------------------------------------------------
    def _human_label(self, d: sansio.Delivery, kind: str) -> tuple[str, dict[str, Any]]:
        repo, number, issue = d.repo, d.issue_number, d.issue or {}
        label = d.payload["label"]["name"]
        if kind == sansio.HUMAN_ADDED and label in self.store.bot_labels(repo, number, dry_run=self.github.dry_run):
            # With a personal token GitHub reports the bot's own labels as added by that user.
            return "ignored", {"reason": f"{label!r} was added by the bot"}
        sender = d.payload.get("sender") if isinstance(d.payload.get("sender"), dict) else {}
        title, body = sansio.issue_title_body(issue)
        after_bot = self.store.bot_acted(repo, number, dry_run=self.github.dry_run)
        self.store.record_human_label(
            delivery_id=d.delivery_id, repo=repo, issue_number=number, label=label,
            action="added" if kind == sansio.HUMAN_ADDED else "removed", actor=sender.get("login"),
            after_bot=after_bot, title=title, body=body, labels_after=sansio.label_names(issue))
        what = "correction" if after_bot else "human label change"
        return "done", {"recorded": what, "label": label, "action": kind}

    # -- labelling ------------------------------------------------------------------------
    def _label(self, d: sansio.Delivery, claimed: Claimed) -> tuple[str, dict[str, Any]]:
        repo, number, inst = d.repo, d.issue_number, d.installation_id
        issue = d.issue or {}
        if d.action == "edited" and self.store.bot_labels(repo, number, dry_run=self.github.dry_run):
            return "ignored", {"reason": "edited after the bot labelled it"}
        if d.action == "opened" and self.store.bot_labels(repo, number, dry_run=self.github.dry_run):
            return "ignored", {"reason": "the bot already labelled this issue"}
        if d.event == "issues" and isinstance(issue.get("pull_request"), dict):
            is_pr = True
        else:
            is_pr = d.event == "pull_request"

        repo_labels, config_text = self.repo_state(repo, inst)
        if config_text is None:
            config_text = self.default_config_text
        config, error = parse_config(config_text)
        if config is None:
            log.warning("%s: %s; not labelling #%s", repo, error, number)
            return "skipped", {"reason": error}
        if config.mode == "off":
            return "skipped", {"reason": "mode is off"}
        if is_pr and not config.pull_requests:
            return "ignored", {"reason": "pull requests are not labelled (pull_requests: false)"}
        author = issue.get("user") if isinstance(issue.get("user"), dict) else {}
        login = str(author.get("login") or "")
        if config.skip_bots and sansio.is_bot_user(author, self.bot_logins):
            return "skipped", {"reason": f"author {login} is a bot"}
        if login.lower() in {a.lower() for a in config.skip_authors}:
            return "skipped", {"reason": f"author {login} is in skip_authors"}

        warnings = [f"config names label {l!r}, which {repo} does not have; ignored"
                    for l in config.unknown_labels(repo_labels)]
        for w in warnings:
            log.warning(w)

        if config.delay > 0:
            due = claimed.received_at + config.delay
            if self.clock() < due:
                raise _Defer(due - self.clock())
            fresh = self.github.issue(repo, number, inst)
            if fresh is not None:
                issue = {**issue, **fresh}

        decision, scored = self._decide(repo, number, issue, config, repo_labels)
        seconds = self.clock() - claimed.received_at
        dry = self.github.dry_run
        title, body = sansio.issue_title_body(issue)
        self.store.record_prediction(
            delivery_id=d.delivery_id, repo=repo, issue_number=number, title=title, body=body, model=scored.model if scored else "",
            scores=scored.scores if scored else {}, chosen=scored.chosen if scored else [],
            decision=_decision_dict(decision), dry_run=dry, seconds=seconds)

        applied: list[str] = []
        if decision.apply:
            already = set(self.store.bot_labels(repo, number, dry_run=self.github.dry_run))
            to_add = [(l, s) for l, s in decision.apply if l not in already]
            if to_add:
                # GitHub first, then the record: if we crash in between, the retry adds the
                # same labels again, which GitHub treats as a no-op.
                self.github.add_labels(repo, number, [l for l, _ in to_add], inst)
                applied = self.store.record_applied(repo, number, to_add, delivery_id=d.delivery_id, dry_run=dry)
        commented = False
        if decision.suggest:
            body = render_comment(decision.suggest, scored.neighbours if scored else [], scored.model if scored else "")
            existing = self.store.comment(repo, number)
            if existing is None or existing["body"] != body:
                cid = self.github.upsert_comment(repo, number, existing["comment_id"] if existing else None, body, inst)
                self.store.save_comment(repo, number, cid, body, dry_run=dry)
                commented = True
        result = {"decision": _decision_dict(decision), "applied": applied, "commented": commented,
                  "dry_run": dry, "model": scored.model if scored else None, "seconds": round(seconds, 3)}
        if warnings:
            result["warnings"] = warnings
        return "done", result

    def _decide(self, repo: str, number: int, issue: dict, config: RepoConfig,
                repo_labels: dict[str, str | None]):
        current = sansio.label_names(issue)
        applied_by_bot = self.store.bot_labels(repo, number, dry_run=self.github.dry_run)
        human = {l.lower() for l in current} - {l.lower() for l in applied_by_bot}
        if config.skip_if_labelled and human:
            return LabelDecision(reason="a human already labelled this issue"), None
        # the labels the model may choose from (used by the zero-shot fallback)
        allow = {l.lower() for l in config.allow}
        deny = {l.lower() for l in config.deny}
        candidates = {l: desc for l, desc in repo_labels.items()
                      if (not allow or l.lower() in allow) and l.lower() not in deny}
        scored = self.predictor.score(sansio.issue_text(issue), candidates or repo_labels, model=config.model,
                                      neighbours=config.mode == "suggest")
        decision = decide(scores=scored.scores, chosen=scored.chosen, config=config, repo_labels=repo_labels,
                          current_labels=current, removed_by_human=self.store.removed_labels(repo, number),
                          applied_by_bot=applied_by_bot)
        return decision, scored


def _decision_dict(decision: LabelDecision) -> dict[str, Any]:
    return {"apply": decision.apply, "suggest": decision.suggest, "skipped": decision.skipped,
            "reason": decision.reason}


def render_comment(suggest: list[tuple[str, float]], neighbours: list[dict[str, Any]], model: str) -> str:
    """The suggestion comment: labels with scores, and similar issues when the model knows them.
    The hidden marker lets maintainers (and the bot) recognise it."""
    lines = [COMMENT_MARKER, "**Suggested labels** (by issue-labeler; a maintainer decides):", "",
             "| label | score |", "| --- | --- |"]
    lines += [f"| `{label}` | {score:.2f} |" for label, score in suggest]
    similar = []
    for n in neighbours[:5]:
        if isinstance(n, dict) and n.get("number") is not None:
            title = str(n.get("title") or "").replace("\n", " ")[:80]
            sim = n.get("similarity")
            similar.append(f"#{n['number']} {title}" + (f" ({float(sim):.2f})" if isinstance(sim, (int, float)) else ""))
    if similar:
        lines += ["", "Similar issues: " + "; ".join(similar)]
    lines += ["", f"<sub>model: {model}</sub>"]
    return "\n".join(lines)
