"""``issue-labeler backfill OWNER/REPO``: label the open issues the bot never saw (opened
before it was installed, or while it was down), through the worker's own path.

Which issues: the open ones, newest first, that are not pull requests, that carry none of
the labels the bot can apply (the model's labels through the repo config's ``aliases``,
existing in the repository, allowed and not denied: :func:`bot.policy.applicable_labels`)
and that the bot has not decided before (no live prediction in the store:
:meth:`bot.store.Store.handled_issues`).

How: each one becomes a synthetic ``issues`` delivery (id ``backfill:OWNER/REPO#N``,
received when the issue was created, so the config's ``delay`` counts from then) and
:meth:`bot.worker.Worker.assess` gathers the facts, asks the policy and the model exactly as
for a delivery: the repository's ``.github/issue-labeler.yml`` (``mode``, ``allow``,
``skip_if_labelled``, ``max_labels``, ...), never a label a human removed from the issue
(the store remembers every ``unlabeled``), only labels the model decided *apply* for the
precision (the config's, or ``precision=``).

Dry run (the default): GitHub and the store are read, never written; the report says what
would be done. ``apply=True``: for each issue, holding its lease in the store (the running
bot does not decide it meanwhile), the issue is read again (it may have been closed or
labelled since it was listed), assessed, and :meth:`bot.worker.Worker.carry_out` records the
prediction, adds the labels in one call and posts the suggestion comment where the mode
asks for one, as the worker does. The recorded prediction marks the issue handled: the
bot's webhook path treats it as decided and a re-run skips it, so an interrupted run
resumes where it stopped. Issues the policy stops (a bot author, ``mode: off``), issues
opened within the ``delay`` and issues the bot is busy with are not recorded: the next run
looks at them again. (As in the worker, the prediction is recorded just before the labels
are written: a run killed between the two leaves that one issue recorded, unlabelled.)

Rate limits: PyGithub's throttle spaces the calls out (GitHub's advice against secondary
limits); a call that fails with a rate limit, a 5xx or a network error
(:class:`bot.github.TransientGitHubError`) is tried again after the wait GitHub asked for and
at least the worker's backoff (:meth:`bot.worker.Worker.retry_wait`), up to the worker's
``max_attempts``; then, or at any other GitHub error, the run stops and the report says why.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping, Protocol, TypeVar

from tqdm import tqdm

from bot import policy, sansio
from bot.config import RepoConfig
from bot.github import GitHubClient, GitHubError, TransientGitHubError
from bot.predictor import PredictorUnavailable
from bot.worker import Defer, Worker

T = TypeVar("T")


class BackfillError(Exception):
    """The backfill cannot start (no credentials, an invalid repo config, an unusable model,
    a repository GitHub will not list); the message says why."""


class IssueLister(GitHubClient, Protocol):
    """What a backfill needs from GitHub beyond the worker's calls (:class:`bot.github.PyGithubClient`)."""

    PER_PAGE: int

    def repo_installation(self, repo: str) -> int | None: ...
    def open_issues(self, repo: str, installation_id: int | None, page: int) -> list[dict[str, Any]]: ...


@dataclass
class Row:
    """One assessed issue: the labels applied (or that would be) and suggested, with scores;
    the model's best scores on the repository's labels; what happened or why nothing did;
    ``written``: recorded in the store and carried out on GitHub; ``commented``: a
    suggestion comment was (or would be) written."""

    number: int
    title: str
    apply: list[tuple[str, float]] = field(default_factory=list)
    suggest: list[tuple[str, float]] = field(default_factory=list)
    scores: list[tuple[str, float]] = field(default_factory=list)
    note: str = ""
    written: bool = False
    commented: bool = False


@dataclass
class Report:
    """What a backfill looked at and did. ``labels``: the labels the bot can apply;
    ``listed`` open issues looked at, of which ``pull_requests``, ``labelled`` (carrying one
    of ``labels``) and ``handled`` (decided before) were left alone and the others assessed
    (``rows``); ``limited``: ``limit`` stopped the listing; ``stopped``: the error that ended
    the run early."""

    repo: str
    apply: bool
    labels: list[str]
    listed: int = 0
    pull_requests: int = 0
    labelled: int = 0
    handled: int = 0
    limited: bool = False
    rows: list[Row] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stopped: str | None = None

    def summary(self) -> str:
        with_labels = [r for r in self.rows if r.apply and (r.written or not self.apply)]
        commented = [r for r in self.rows if r.commented]
        n_labels = sum(len(r.apply) for r in with_labels)
        verb = "got" if self.apply else "would get"
        text = (f"{self.repo}: {self.listed} open issue(s) looked at ({self.pull_requests} pull request(s), "
                f"{self.labelled} already labelled, {self.handled} handled before: left alone); "
                f"{len(self.rows)} assessed: {len(with_labels)} {verb} {n_labels} label(s), "
                f"{len(commented)} {verb} a suggestion comment")
        if not self.apply:
            text += "; dry run, nothing written (--apply writes)"
        if self.limited:
            text += "; the limit was reached, run again for more"
        if self.stopped:
            text += f"; STOPPED: {self.stopped} (run again to resume)"
        return text


def backfill(worker: Worker, repo: str, *, apply: bool = False, limit: int | None = None,
             precision: float | None = None, sleep: Callable[[float], None] = time.sleep) -> Report:
    """Assess (and with ``apply``, label) the open issues of ``repo`` the bot has not
    labelled; see the module docstring. At most ``limit`` issues are assessed; ``precision``
    replaces the repo config's; ``sleep`` waits between tries of a failed GitHub call.
    Raises :class:`BackfillError` when it cannot start."""
    github: IssueLister = worker.github  # type: ignore[assignment]
    if github.dry_run:
        raise BackfillError("backfill reads the repository's issues from GitHub: set GITHUB_TOKEN, or "
                            "GITHUB_APP_ID and GITHUB_PRIVATE_KEY (read access is enough for a dry run)")

    def retrying(call: Callable[[], T]) -> T:
        return _retrying(worker, sleep, call)

    try:
        inst = retrying(lambda: github.repo_installation(repo))
        repo_labels, config, error, warnings = retrying(lambda: worker.repo_config(repo, inst))
    except GitHubError as exc:
        raise BackfillError(str(exc)) from None
    if config is None:
        raise BackfillError(error or "the repo config is invalid")
    if precision is not None and (config.threshold is not None or config.thresholds):
        warnings.append("--precision has no effect: the repo config sets threshold/thresholds, "
                        "which replace the model's decisions")
    try:
        model_labels = worker.predictor.labels(policy.model_labels(config, repo_labels), repo=repo, model=config.model)
    except PredictorUnavailable as exc:
        raise BackfillError(f"the model cannot be used: {exc}") from None
    labels = policy.applicable_labels(config, model_labels, repo_labels)
    if not labels:
        raise BackfillError(f"none of the model's labels is a label of {repo} that the repo config allows "
                            "(after aliases, allow and deny): nothing could be applied")
    report = Report(repo, apply, labels, warnings=warnings)
    try:
        candidates = _candidates(worker, github, repo, inst, report, limit, retrying)
    except GitHubError as exc:
        raise BackfillError(str(exc)) from None

    for issue in tqdm(candidates, desc=repo, unit="issue", file=sys.stderr):
        try:
            row = retrying(lambda: _one(worker, repo, inst, issue, config, repo_labels, report,
                                        apply=apply, precision=precision))
        except (GitHubError, PredictorUnavailable) as exc:
            report.stopped = f"#{issue['number']}: {exc}"
            break
        report.rows.append(row)
    return report


def _retrying(worker: Worker, sleep: Callable[[float], None], call: Callable[[], T]) -> T:
    """``call()``, tried again after a :class:`TransientGitHubError` (the worker's waits and
    ``max_attempts``)."""
    attempts = 0
    while True:
        attempts += 1
        try:
            return call()
        except TransientGitHubError as exc:
            if attempts >= worker.max_attempts:
                raise
            wait = worker.retry_wait(attempts, exc.delay)
            tqdm.write(f"{exc}; trying again in {wait:.0f}s", file=sys.stderr)
            sleep(wait)


def _candidates(worker: Worker, github: IssueLister, repo: str, inst: int | None, report: Report,
                limit: int | None, retrying: Callable) -> list[dict[str, Any]]:
    """The open issues to assess, counting the others in ``report``; a page at a time, until
    the last page or ``limit``."""
    applicable = {l.lower() for l in report.labels}
    handled = worker.store.handled_issues(repo)
    seen: set[int] = set()
    out: list[dict[str, Any]] = []
    page = 0
    while True:
        items = retrying(lambda: github.open_issues(repo, inst, page))
        for issue in items:
            number = issue.get("number")
            if not isinstance(number, int) or number in seen:  # an issue opened meanwhile shifts the pages
                continue
            if limit is not None and len(out) >= limit:
                report.limited = True
                return out
            seen.add(number)
            report.listed += 1
            if isinstance(issue.get("pull_request"), dict):
                report.pull_requests += 1
            elif applicable & {l.lower() for l in sansio.label_names(issue)}:
                report.labelled += 1
            elif number in handled:
                report.handled += 1
            else:
                out.append(issue)
        if len(items) < github.PER_PAGE:
            return out
        page += 1


def _one(worker: Worker, repo: str, inst: int | None, issue: dict[str, Any], config: RepoConfig,
         repo_labels: Mapping[str, str | None], report: Report, *, apply: bool, precision: float | None) -> Row:
    """Assess one listed issue; with ``apply``, under its lease, read it again and carry the
    decision out."""
    number = issue["number"]
    d = _delivery(repo, inst, issue)
    row = Row(number, sansio.issue_title_body(issue)[0])
    if not apply:
        return _assess(worker, d, issue, row, config, repo_labels, precision=precision, write=False)
    with worker.hold_issue(repo, number) as held:
        if not held:
            row.note = "the bot is deciding this issue right now; left to it"
            return row
        if worker.store.issue_seen(repo, number, other_than=d.delivery_id):
            row.note = "the bot decided this issue meanwhile"
            return row
        fresh = worker.github.issue(repo, number, inst)
        if fresh is None or fresh.get("state") != "open":
            row.note = "closed since it was listed"
            return row
        issue = {**issue, **fresh}
        if {l.lower() for l in report.labels} & {l.lower() for l in sansio.label_names(issue)}:
            row.note = "labelled since it was listed"
            return row
        return _assess(worker, d, issue, row, config, repo_labels, precision=precision, write=True)


def _assess(worker: Worker, d: sansio.Delivery, issue: dict[str, Any], row: Row, config: RepoConfig,
            repo_labels: Mapping[str, str | None], *, precision: float | None, write: bool) -> Row:
    """Fill ``row`` with the worker's assessment of ``issue`` (``config`` and ``repo_labels``
    only map the model's scores to the repository's labels for the table); ``write``: carry
    it out."""
    try:
        assessed = worker.assess(d, issue, precision=precision, fresh=True)
    except Defer as wait:
        row.note = f"opened within the config's delay: left to the bot (or run again in {wait.delay:.0f}s)"
        return row
    if assessed.scored is not None:
        mapped = policy.map_scores(assessed.scored.scores, config, repo_labels)
        row.scores = sorted(mapped.items(), key=lambda kv: -kv[1])[:3]
    decision = assessed.decision
    if decision is None:
        row.note = f"{assessed.status}: {assessed.reason}"
        return row
    row.apply, row.suggest = list(decision.apply), list(decision.suggest)
    # the columns show what is applied and suggested; the note says why the others are not
    skipped = [f"{label}: {why}" for label, why in decision.skipped.items()]
    row.note = "; ".join(skipped if skipped or row.apply or row.suggest else [decision.reason])
    if write:
        result = worker.carry_out(d, assessed.issue, decision, assessed.scored)
        row.written, row.commented = True, bool(result["commented"])
    else:
        row.commented = bool(decision.suggest)
    return row


def _delivery(repo: str, inst: int | None, issue: dict[str, Any]) -> sansio.Delivery:
    """The synthetic delivery the worker's path takes for a listed issue."""
    payload: dict[str, Any] = {"action": "backfill", "issue": issue, "repository": {"full_name": repo}}
    if inst is not None:
        payload["installation"] = {"id": inst}
    created = issue.get("created_at")
    try:
        received = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp() if created else None
    except (AttributeError, ValueError):
        received = None
    return sansio.Delivery(f"backfill:{repo}#{issue['number']}", "issues", payload, received_at=received)
