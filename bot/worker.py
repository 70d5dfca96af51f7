"""The worker: turns one stored delivery into labels, a suggestion comment, or a record.

:meth:`Worker.process` is what the queue task calls with a ``delivery_id``. It claims the
delivery in the store (so a task run twice, or a redelivery, is processed once), does the
work, and returns an :class:`Outcome`. It never raises: GitHub failures that are worth
retrying come back as ``Outcome("retry", retry_in=...)`` (the queue re-schedules the task;
see :mod:`bot.queue`), and after ``max_attempts`` the delivery is ``failed`` with the error
recorded. Anything unexpected is logged and treated the same way, so no payload can crash
the worker.

:meth:`_handle` asks the router which handler answers the delivery (one function per event
and action, in :mod:`bot.handlers`) and calls it with this worker. The labelling handlers
call :meth:`Worker.label`, which gathers facts, lets :mod:`bot.policy` decide and carries
the decision out; it decides nothing itself. Steps 1-4 are :meth:`Worker.assess` (reads
only) and step 5 is :meth:`Worker.carry_out` (writes), so ``issue-labeler backfill``
(:mod:`bot.backfill`) labels existing issues through the very same path:

1. facts from the payload and the store (:class:`bot.policy.IssueFacts`); the policy's
   :func:`~bot.policy.triage` may stop here (an edit after the bot labelled);
2. the repository's labels and ``.github/issue-labeler.yml`` (cached for a minute; an
   invalid file: skipped, logged);
3. :func:`~bot.policy.plan`: stop, wait out the ``delay`` (re-queued without counting as an
   attempt; then the issue is read again and the policy asked again), a decision without
   the model, or score;
4. score the text with the labels the plan allows (:mod:`bot.predictor`), then
   :func:`~bot.policy.decide`;
5. carry it out: record the prediction, add the labels in one call, create or edit the one
   suggestion comment, record the labels and the comment (:mod:`bot.store`).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from bot import policy, sansio
from bot.config import RepoConfig, parse_config
from bot.github import COMMENT_MARKER, GitHubClient, PermanentGitHubError, TransientGitHubError
from bot.handlers import router as default_router
from bot.predictor import Predictor, PredictorUnavailable, Scored
from bot.routing import Router
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


class Defer(Exception):
    """Raised by :meth:`Worker.assess` when the policy says wait ``delay`` seconds (the repo
    config's ``delay``) before labelling the issue."""

    def __init__(self, delay: float):
        super().__init__(f"wait {delay:.0f}s")
        self.delay = delay


@dataclass
class Assessment:
    """What the policy decided about one issue, before anything is written: with a
    ``decision``, the worker carries it out (``scored``: the model's view, when it was
    asked); without one, the delivery ends with ``status`` (ignored / skipped) and
    ``reason``. ``issue`` is the issue decided on (re-read from GitHub when the policy asked
    to look again); ``warnings``: labels the repo config names that the repository lacks."""

    status: str
    issue: dict[str, Any]
    reason: str = ""
    decision: policy.LabelDecision | None = None
    scored: Scored | None = None
    warnings: list[str] = field(default_factory=list)


class Worker:
    def __init__(self, store: Store, github: GitHubClient, predictor: Predictor, *,
                 bot_logins: set[str] | frozenset[str] = frozenset(), max_attempts: int = 5,
                 backoff_base: float = 2.0, backoff_cap: float = 3600.0,
                 default_config_text: str | None = None, repo_cache_seconds: float = 60.0, clock=time.time,
                 router: Router | None = None, lease_seconds: float = 300.0, lease_wait: float = 0.5):
        self.store = store
        self.lease_seconds = lease_seconds  # a dead worker's issue lease frees itself after this
        self.lease_wait = lease_wait        # a delivery whose issue is busy comes back after ~this
        self.router = router or default_router
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

    def repo_config(self, repo: str, installation_id: int | None
                    ) -> tuple[dict[str, str | None], RepoConfig | None, str | None, list[str]]:
        """The repository's labels; its parsed config (the local default file when the
        repository has none), or None and the reason when it is invalid; and a warning for
        each label the config names that the repository does not have."""
        repo_labels, config_text = self.repo_state(repo, installation_id)
        config, error = parse_config(config_text if config_text is not None else self.default_config_text)
        warnings = [] if config is None else [
            f"config names label {l!r}, which {repo} does not have; ignored" for l in config.unknown_labels(repo_labels)]
        return repo_labels, config, error, warnings

    def retry_wait(self, attempts: int, delay: float) -> float:
        """Seconds to wait after the ``attempts``-th failure when GitHub asked for ``delay``:
        at least that, at least the exponential backoff, at most ``backoff_cap``."""
        backoff = min(self.backoff_cap, self.backoff_base * 2 ** (attempts - 1))
        return min(self.backoff_cap, max(delay, backoff))

    @contextmanager
    def hold_issue(self, repo: str, number: int) -> Iterator[bool]:
        """Hold the issue's lease in the store (across threads, processes and hosts) for the
        ``with`` block, so one decision about an issue is made at a time; yields False, and
        holds nothing, while another holder has it."""
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        if not self.store.acquire_issue(repo, number, holder, self.lease_seconds):
            yield False
            return
        try:
            yield True
        finally:
            self.store.release_issue(repo, number, holder)

    # -- entry point ----------------------------------------------------------------------
    def process(self, delivery_id: str) -> Outcome:
        claimed = self.store.claim(delivery_id, max_attempts=self.max_attempts)
        if claimed is None:
            return Outcome("not_claimed")
        # one decision per issue at a time: hold the issue's lease while deciding and writing
        d = sansio.Delivery(claimed.delivery_id, claimed.event, claimed.payload)
        if d.repo is None or d.issue_number is None:
            return self._process(claimed)
        with self.hold_issue(d.repo, d.issue_number) as held:
            if not held:
                wait = self.lease_wait * (1 + random.random())
                self.store.defer(delivery_id, wait, attempt=False)
                return Outcome("deferred", retry_in=wait)
            return self._process(claimed)

    def _process(self, claimed: Claimed) -> Outcome:
        delivery_id = claimed.delivery_id
        try:
            status, result = self._handle(claimed)
        except Defer as d:
            self.store.defer(delivery_id, d.delay, attempt=False)
            return Outcome("deferred", retry_in=d.delay)
        except TransientGitHubError as exc:
            return self._retry_or_fail(claimed, str(exc), exc.delay)
        except (PermanentGitHubError, PredictorUnavailable, sansio.WebhookError) as exc:
            # retrying cannot help (a 4xx from GitHub, an unusable bundle, a payload that
            # fails validation): failed at once, with the reason
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
        wait = self.retry_wait(claimed.attempts, delay)  # at least what GitHub asked for
        log.info("delivery %s attempt %d failed (%s); retrying in %.1fs", claimed.delivery_id,
                 claimed.attempts, error, wait)
        self.store.defer(claimed.delivery_id, wait, error=error)
        return Outcome("retry", retry_in=wait, error=error)

    # -- dispatch -------------------------------------------------------------------------
    def _handle(self, claimed: Claimed) -> tuple[str, dict[str, Any]]:
        payload = sansio.validate_payload(claimed.event, claimed.payload)  # WebhookError: permanent
        delivery = sansio.Delivery(claimed.delivery_id, claimed.event, payload, received_at=claimed.received_at)
        route = self.router.route(delivery, self.bot_logins)
        if route.handler is None:
            return "ignored", {"reason": route.reason}
        return route.handler(self, delivery)

    # -- labelling: gather the facts, ask the policy, carry the decision out ---------------
    def label(self, d: sansio.Delivery) -> tuple[str, dict[str, Any]]:
        """Label the issue of an ``issues`` (or ``pull_request``) delivery; see the module docstring."""
        repo, number, inst = d.repo, d.issue_number, d.installation_id
        issue = d.issue or {}
        seen = self.store.issue_seen(repo, number)
        if self.store.issue_seen(repo, number, other_than=d.delivery_id):
            # another delivery of this issue was decided before (an opened and an edited
            # arriving together, a retry, a redelivery): act on the issue as it is now, not
            # as this payload saw it (newest title/body, the labels on it now)
            fresh = self.github.issue(repo, number, inst)
            if fresh is not None:
                issue = {**issue, **fresh}
        assessed = self.assess(d, issue)
        if assessed.decision is None:
            return assessed.status, {"reason": assessed.reason}
        result = self.carry_out(d, assessed.issue, assessed.decision, assessed.scored, seen=seen)
        if assessed.warnings:
            result["warnings"] = assessed.warnings
        return "done", result

    def assess(self, d: sansio.Delivery, issue: dict[str, Any], *, precision: float | None = None,
               fresh: bool = False) -> Assessment:
        """Steps 1-4 of the module docstring for ``issue`` (the delivery's issue, or as
        re-read): gather the facts, ask the policy, score when it says so, and return its
        decision. Reads GitHub and the store, writes nothing. ``precision`` replaces the repo
        config's; ``fresh``: ``issue`` was just read from GitHub, so the policy need not read
        it again once the config's ``delay`` is over. Raises :class:`Defer` while the delay
        runs."""
        repo, number, inst = d.repo, d.issue_number, d.installation_id
        facts = self._facts(d, issue, refreshed=fresh)
        stop = policy.triage(facts)
        if stop is not None:
            return Assessment(stop.status, issue, stop.reason)

        repo_labels, config, error, warnings = self.repo_config(repo, inst)
        if config is None:
            log.warning("%s: %s; not labelling #%s", repo, error, number)
            return Assessment("skipped", issue, error or "")
        if precision is not None:
            config = config.model_copy(update={"precision": precision})
        facts.repo_labels = repo_labels
        for w in warnings:
            log.warning(w)

        plan = policy.plan(facts, config, now=self.clock())
        if plan.kind == policy.WAIT:
            raise Defer(plan.wait)
        if plan.kind == policy.REFRESH:
            reread = self.github.issue(repo, number, inst)
            issue = {**issue, **reread} if reread is not None else issue
            facts = self._facts(d, issue, repo_labels, refreshed=True)
            plan = policy.plan(facts, config, now=self.clock())
        if plan.kind == policy.STOP:
            return Assessment(plan.status, issue, plan.reason)

        scored: Scored | None = None
        if plan.kind == policy.SCORE:
            scored = self.predictor.score(sansio.issue_text(issue), plan.model_labels, model=config.model,
                                          precision=plan.precision, neighbours=plan.neighbours)
            decision = policy.decide(facts, config, scored)
        else:
            decision = plan.decision or policy.LabelDecision(reason=plan.reason)
        return Assessment("done", issue, decision.reason, decision, scored, warnings)

    def _facts(self, d: sansio.Delivery, issue: dict[str, Any], repo_labels: dict[str, str | None] | None = None,
               *, refreshed: bool = False) -> policy.IssueFacts:
        """What the policy needs to know about the issue: the payload's (or re-read) issue,
        and what the store remembers about it."""
        repo, number = d.repo, d.issue_number
        author = issue.get("user") if isinstance(issue.get("user"), dict) else {}
        is_pr = d.event == "pull_request" or isinstance(issue.get("pull_request"), dict)
        return policy.IssueFacts(
            action=d.action, is_pull_request=is_pr, author=str(author.get("login") or ""),
            author_is_bot=sansio.is_bot_user(author, self.bot_logins), labels=sansio.label_names(issue),
            applied_by_bot=self.store.bot_labels(repo, number, dry_run=self.github.dry_run),
            removed_by_human=self.store.removed_labels(repo, number), repo_labels=repo_labels or {},
            received_at=d.received_at if d.received_at is not None else self.clock(), refreshed=refreshed)

    def carry_out(self, d: sansio.Delivery, issue: dict[str, Any], decision: policy.LabelDecision,
                  scored: Scored | None, *, seen: bool = False) -> dict[str, Any]:
        """Step 5: record the prediction, add the labels in one call, write the one comment.
        ``seen``: a delivery of this issue was decided before (look for a comment the store
        may have missed)."""
        repo, number, inst = d.repo, d.issue_number, d.installation_id
        dry = self.github.dry_run
        seconds = self.clock() - (d.received_at if d.received_at is not None else self.clock())
        title, body = sansio.issue_title_body(issue)
        model = scored.model if scored else ""
        self.store.record_prediction(
            delivery_id=d.delivery_id, repo=repo, issue_number=number, title=title, body=body, model=model,
            scores=scored.scores if scored else {}, chosen=scored.chosen if scored else [],
            decision=decision.to_dict(), dry_run=dry, seconds=seconds)
        applied: list[str] = []
        if decision.apply:
            # GitHub first, then the record: if we crash in between, the retry adds the same
            # labels again, which GitHub treats as a no-op.
            self.github.add_labels(repo, number, [l for l, _ in decision.apply], inst)
            applied = self.store.record_applied(repo, number, decision.apply, delivery_id=d.delivery_id, dry_run=dry)
        commented = False
        if decision.suggest:
            text = render_comment(decision.suggest, scored.neighbours if scored else [], model)
            existing = self.store.comment(repo, number)
            if existing is None and not dry:
                # the store may have missed the comment (a worker died between posting it and
                # recording it): look for the bot's marker on the issue before posting again
                find = getattr(self.github, "find_comment", None)
                cid = find(repo, number, inst) if find is not None and seen else None
                if cid is not None:
                    existing = {"comment_id": cid, "body": None}
            if existing is None or existing["body"] != text:  # the same suggestion again: no call
                cid = self.github.upsert_comment(repo, number, existing["comment_id"] if existing else None, text, inst)
                self.store.save_comment(repo, number, cid, text, dry_run=dry)
                commented = True
        return {"decision": decision.to_dict(), "applied": applied, "commented": commented, "dry_run": dry,
                "model": scored.model if scored else None, "seconds": round(seconds, 3)}


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
