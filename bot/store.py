"""The bot's database (SQLAlchemy 2; an SQLite file by default, any database URL works).

Tables, and who writes them:

``deliveries``         every accepted webhook delivery (web app), with its processing status,
                       attempts and last error (worker). ``delivery_id`` (GitHub's
                       ``X-GitHub-Delivery``) is UNIQUE: that constraint, not the queue, is
                       what makes a redelivery a no-op.
``predictions``        what the model said about an issue (scores, chosen labels, model
                       version) and what the policy decided, one row per delivery.
``applied_labels``     labels the bot added (or would have added, in dry-run), UNIQUE per
                       (repo, issue, label, dry_run): the bot never adds a label twice.
``comments``           the one suggestion comment per issue (edited in place).
``human_label_events`` labels people added or removed, ``after_bot`` when the bot had acted:
                       removals are never undone; after-bot events are the corrections that
                       ``issue-labeler export-corrections`` writes for retraining.
``served_repos``       repositories a GitHub App installation serves (for operators: the bot
                       itself does not read it).

Delivery status: ``queued`` -> ``processing`` -> ``done`` | ``ignored`` | ``skipped`` |
``failed``, or back to ``retry`` (waiting for a backoff) or ``queued`` (waiting for a
``delay``, or for another delivery of the same issue to finish). ``poison``: the delivery
was claimed ``max_attempts`` times and never finished (it killed its worker each time); it
is quarantined until an operator retries it (``issue-labeler deliveries retry``). A
``failed`` delivery is reopened when GitHub redelivers it (same ``X-GitHub-Delivery``);
any other redelivery is a duplicate.

``issue_leases``       one row per (repo, issue) being worked on: a worker holds the lease
                       while it decides and writes, so two deliveries of one issue (an
                       ``opened`` and an ``edited`` arriving together) are processed one after
                       the other, across threads, processes and machines. A lease expires
                       (a worker that died frees it after ``lease_seconds``). :meth:`Store.claim` moves ``queued``/``retry`` to ``processing`` in one UPDATE, so
two workers (or a task enqueued twice) cannot both process one delivery.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

from sqlalchemy import (BigInteger, Boolean, Float, Integer, String, Text, UniqueConstraint, create_engine,
                        delete, event, func, select, update)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from bot.predictor import issue_text

DEFAULT_DATABASE_URL = "sqlite:///issue-labeler.sqlite3"
FINAL = ("done", "ignored", "skipped", "failed", "poison")
#: GitHub's ids and issue numbers are 64-bit (PostgreSQL's INTEGER is 32-bit)
BigInt = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    pass


class DeliveryRow(Base):
    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    event: Mapped[str] = mapped_column(String(100))
    action: Mapped[str | None] = mapped_column(String(100))
    repo: Mapped[str | None] = mapped_column(String(300), index=True)
    issue_number: Mapped[int | None] = mapped_column(BigInt)
    installation_id: Mapped[int | None] = mapped_column(BigInt)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), index=True, default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[float] = mapped_column(Float)
    claimed_at: Mapped[float | None] = mapped_column(Float)
    next_attempt_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)


class PredictionRow(Base):
    __tablename__ = "predictions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(200), unique=True)
    repo: Mapped[str] = mapped_column(String(300), index=True)
    issue_number: Mapped[int] = mapped_column(BigInt)
    title: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str] = mapped_column(String(300))
    scores: Mapped[str] = mapped_column(Text)       # JSON {label: score}
    chosen: Mapped[str] = mapped_column(Text)       # JSON [label, ...] (the model's rule)
    decision: Mapped[str] = mapped_column(Text)     # JSON {apply, suggest, skipped, reason}
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)  # delivery received -> decided
    created_at: Mapped[float] = mapped_column(Float)


class AppliedLabelRow(Base):
    __tablename__ = "applied_labels"
    # dry-run records are kept apart, so switching a store from dry-run to live starts clean
    __table_args__ = (UniqueConstraint("repo", "issue_number", "label", "dry_run"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo: Mapped[str] = mapped_column(String(300))
    issue_number: Mapped[int] = mapped_column(BigInt)
    label: Mapped[str] = mapped_column(String(200))
    score: Mapped[float] = mapped_column(Float)
    delivery_id: Mapped[str] = mapped_column(String(200))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)


class CommentRow(Base):
    __tablename__ = "comments"
    __table_args__ = (UniqueConstraint("repo", "issue_number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo: Mapped[str] = mapped_column(String(300))
    issue_number: Mapped[int] = mapped_column(BigInt)
    comment_id: Mapped[int | None] = mapped_column(BigInt)
    body: Mapped[str] = mapped_column(Text)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class HumanLabelEventRow(Base):
    __tablename__ = "human_label_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(200), unique=True)
    repo: Mapped[str] = mapped_column(String(300), index=True)
    issue_number: Mapped[int] = mapped_column(BigInt)
    label: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(10))  # added | removed
    actor: Mapped[str | None] = mapped_column(String(200))
    after_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    title: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    labels_after: Mapped[str] = mapped_column(Text, default="[]")  # JSON: labels on the issue after
    created_at: Mapped[float] = mapped_column(Float)


class IssueLeaseRow(Base):
    __tablename__ = "issue_leases"
    repo: Mapped[str] = mapped_column(String(300), primary_key=True)
    issue_number: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=False)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class ServedRepoRow(Base):
    __tablename__ = "served_repos"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo: Mapped[str] = mapped_column(String(300), unique=True)
    installation_id: Mapped[int | None] = mapped_column(BigInt)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[float] = mapped_column(Float)


@dataclass
class Claimed:
    """A delivery a worker now owns."""

    delivery_id: str
    event: str
    payload: dict[str, Any]
    attempts: int
    received_at: float


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


class Store:
    """All database access of the bot. Thread-safe: every method opens its own session."""

    def __init__(self, url: str = DEFAULT_DATABASE_URL, *, clock=time.time):
        self.url = url
        self.clock = clock
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        self.engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            @event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(dbapi_conn, _record):  # WAL: the web app reads while the worker writes
                cur = dbapi_conn.cursor()
                if ":memory:" not in url and url not in ("sqlite://", "sqlite:///"):
                    cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()
        Base.metadata.create_all(self.engine)
        self.session = sessionmaker(self.engine, expire_on_commit=False)

    # -- deliveries -----------------------------------------------------------------------
    def add_delivery(self, delivery_id: str, event: str, payload_json: str, *, action: str | None = None,
                     repo: str | None = None, issue_number: int | None = None,
                     installation_id: int | None = None, status: str = "queued") -> bool:
        """Store an accepted delivery; False when this ``delivery_id`` was seen before (a
        duplicate), except that a redelivery of a ``failed`` delivery reopens it (status
        ``queued``, attempts back to 0, the redelivered payload) and counts as new."""
        row = DeliveryRow(delivery_id=delivery_id, event=event, action=action, repo=repo,
                          issue_number=issue_number, installation_id=installation_id,
                          payload=payload_json, status=status, attempts=0, received_at=self.clock(),
                          finished_at=self.clock() if status in FINAL else None)
        try:
            with self.session.begin() as s:
                s.add(row)
        except IntegrityError:
            if status in FINAL:  # an ignored redelivery stays a duplicate
                return False
            with self.session.begin() as s:
                res = s.execute(update(DeliveryRow)
                                .where(DeliveryRow.delivery_id == delivery_id, DeliveryRow.status == "failed")
                                .values(status="queued", attempts=0, payload=payload_json, received_at=self.clock(),
                                        claimed_at=None, next_attempt_at=None, finished_at=None))
            return res.rowcount == 1
        return True

    def retry(self, delivery_id: str | None = None, *, all_failed: bool = False) -> list[str]:
        """An operator's retry (``issue-labeler deliveries retry``): a ``failed`` or ``poison``
        delivery (or every ``failed`` one) goes back to ``queued`` with attempts at 0.
        Returns the ids reopened; the caller enqueues them (recovery would, too)."""
        cond = (DeliveryRow.status == "failed") if all_failed else (
            (DeliveryRow.delivery_id == delivery_id) & DeliveryRow.status.in_(("failed", "poison")))
        with self.session.begin() as s:
            ids = list(s.execute(select(DeliveryRow.delivery_id).where(cond)).scalars())
            if ids:
                s.execute(update(DeliveryRow).where(DeliveryRow.delivery_id.in_(ids))
                          .values(status="queued", attempts=0, claimed_at=None, next_attempt_at=None,
                                  finished_at=None))
        return ids

    def deliveries(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest deliveries (optionally of one status), for ``deliveries list``."""
        cols = [DeliveryRow.delivery_id, DeliveryRow.event, DeliveryRow.action, DeliveryRow.repo,
                DeliveryRow.issue_number, DeliveryRow.status, DeliveryRow.attempts, DeliveryRow.error,
                DeliveryRow.received_at]
        q = select(*cols).order_by(DeliveryRow.id.desc()).limit(limit)
        if status:
            q = q.where(DeliveryRow.status == status)
        with self.session() as s:
            return [dict(r._mapping) for r in s.execute(q)]

    def claim(self, delivery_id: str, *, max_attempts: int | None = None) -> Claimed | None:
        """Take a ``queued``/``retry`` delivery for processing (one atomic UPDATE); None when it
        is done, being processed elsewhere, or unknown. With ``max_attempts``, a delivery that
        was already claimed that many times without finishing (its worker died each time:
        failures the worker sees end as ``retry`` or ``failed``) is quarantined as ``poison``
        instead, so the bound on attempts holds across process deaths."""
        now = self.clock()
        with self.session.begin() as s:
            where = [DeliveryRow.delivery_id == delivery_id, DeliveryRow.status.in_(("queued", "retry"))]
            if max_attempts is not None:
                where.append(DeliveryRow.attempts < max_attempts)
            res = s.execute(update(DeliveryRow).where(*where)
                            .values(status="processing", claimed_at=now, attempts=DeliveryRow.attempts + 1))
            if res.rowcount != 1:
                if max_attempts is not None:
                    s.execute(update(DeliveryRow).where(DeliveryRow.delivery_id == delivery_id,
                                                        DeliveryRow.status.in_(("queued", "retry")),
                                                        DeliveryRow.attempts >= max_attempts)
                              .values(status="poison", finished_at=now,
                                      error=f"poison: claimed {max_attempts} times and never finished "
                                            "(its worker died each time); quarantined"))
                return None
            row = s.execute(select(DeliveryRow).where(DeliveryRow.delivery_id == delivery_id)).scalar_one()
            return Claimed(row.delivery_id, row.event, json.loads(row.payload), row.attempts, row.received_at)

    # -- per-issue leases ---------------------------------------------------------------------
    def acquire_issue(self, repo: str, issue_number: int, holder: str, lease_seconds: float = 300.0) -> bool:
        """Take the lease on one issue (see ``issue_leases``); False while another holder has it."""
        now = self.clock()
        try:
            with self.session.begin() as s:
                s.add(IssueLeaseRow(repo=repo, issue_number=issue_number, holder=holder, acquired_at=now,
                                    expires_at=now + lease_seconds))
            return True
        except IntegrityError:
            pass
        with self.session.begin() as s:  # taken: take it over only when it expired (or is ours)
            res = s.execute(update(IssueLeaseRow)
                            .where(IssueLeaseRow.repo == repo, IssueLeaseRow.issue_number == issue_number,
                                   (IssueLeaseRow.expires_at < now) | (IssueLeaseRow.holder == holder))
                            .values(holder=holder, acquired_at=now, expires_at=now + lease_seconds))
            return res.rowcount == 1

    def release_issue(self, repo: str, issue_number: int, holder: str) -> None:
        with self.session.begin() as s:
            s.execute(delete(IssueLeaseRow).where(IssueLeaseRow.repo == repo,
                                                  IssueLeaseRow.issue_number == issue_number,
                                                  IssueLeaseRow.holder == holder))

    def issue_seen(self, repo: str, issue_number: int, *, other_than: str | None = None) -> bool:
        """True once a delivery of this issue (other than ``other_than``) reached a decision
        (a prediction is recorded)."""
        q = select(PredictionRow.id).where(PredictionRow.repo == repo, PredictionRow.issue_number == issue_number)
        if other_than is not None:
            q = q.where(PredictionRow.delivery_id != other_than)
        with self.session() as s:
            return s.execute(q.limit(1)).first() is not None

    def handled_issues(self, repo: str) -> set[int]:
        """Numbers of the repository's issues the live bot decided (a prediction is recorded,
        dry-run ones aside): ``issue-labeler backfill`` leaves them alone."""
        with self.session() as s:
            return set(s.execute(select(PredictionRow.issue_number).where(
                PredictionRow.repo == repo, PredictionRow.dry_run.is_(False)).distinct()).scalars())

    def finish(self, delivery_id: str, status: str, *, result: dict | None = None, error: str | None = None) -> None:
        assert status in FINAL, status
        with self.session.begin() as s:
            s.execute(update(DeliveryRow).where(DeliveryRow.delivery_id == delivery_id)
                      .values(status=status, finished_at=self.clock(), next_attempt_at=None,
                              result=json.dumps(result) if result is not None else None, error=error))

    def defer(self, delivery_id: str, delay: float, *, error: str | None = None, attempt: bool = True) -> None:
        """Put a claimed delivery back: ``retry`` after a failure (counts as an attempt) or
        ``queued`` while waiting for the repo's ``delay`` (``attempt=False``, not counted)."""
        values: dict[str, Any] = {"status": "retry" if attempt else "queued",
                                  "next_attempt_at": self.clock() + delay}
        if error is not None:
            values["error"] = error
        if not attempt:
            values["attempts"] = DeliveryRow.attempts - 1
        with self.session.begin() as s:
            s.execute(update(DeliveryRow).where(DeliveryRow.delivery_id == delivery_id).values(**values))

    def recover(self, stale_after: float = 600.0) -> list[tuple[str, float]]:
        """After a worker crash: ``processing`` rows claimed more than ``stale_after`` seconds
        ago go back to ``queued``. Returns every unfinished delivery as (id, seconds until
        due), for re-enqueueing; enqueueing one twice is harmless (see :meth:`claim`)."""
        now = self.clock()
        with self.session.begin() as s:
            s.execute(update(DeliveryRow)
                      .where(DeliveryRow.status == "processing", DeliveryRow.claimed_at <= now - stale_after)
                      .values(status="queued"))
            # the issue leases of those dead workers go with them
            s.execute(delete(IssueLeaseRow).where(IssueLeaseRow.acquired_at <= now - stale_after))
            rows = s.execute(select(DeliveryRow.delivery_id, DeliveryRow.next_attempt_at)
                             .where(DeliveryRow.status.in_(("queued", "retry")))
                             .order_by(DeliveryRow.id)).all()
        return [(d, max(0.0, (t or now) - now)) for d, t in rows]

    def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        with self.session() as s:
            row = s.execute(select(DeliveryRow).where(DeliveryRow.delivery_id == delivery_id)).scalar_one_or_none()
            if row is None:
                return None
            return {c.name: getattr(row, c.name) for c in DeliveryRow.__table__.columns}

    def status_counts(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)).all()
        return {status: n for status, n in rows}

    # -- what the bot did ------------------------------------------------------------------
    def record_prediction(self, *, delivery_id: str, repo: str, issue_number: int, title: str, body: str,
                          model: str, scores: dict[str, float], chosen: list[str], decision: dict,
                          dry_run: bool, seconds: float) -> None:
        row = PredictionRow(delivery_id=delivery_id, repo=repo, issue_number=issue_number, title=title,
                            body=body, model=model, scores=json.dumps(scores), chosen=json.dumps(chosen),
                            decision=json.dumps(decision), dry_run=dry_run, seconds=seconds,
                            created_at=self.clock())
        try:
            with self.session.begin() as s:
                s.add(row)
        except IntegrityError:  # re-processing after a crash: keep the first
            pass

    def record_applied(self, repo: str, issue_number: int, labels: list[tuple[str, float]], *,
                       delivery_id: str, dry_run: bool) -> list[str]:
        """Record labels the bot adds; returns those not recorded before (the only ones to send)."""
        new = []
        for label, score in labels:
            try:
                with self.session.begin() as s:
                    s.add(AppliedLabelRow(repo=repo, issue_number=issue_number, label=label, score=score,
                                          delivery_id=delivery_id, dry_run=dry_run, created_at=self.clock()))
                new.append(label)
            except IntegrityError:
                pass
        return new

    def bot_labels(self, repo: str, issue_number: int, dry_run: bool = False) -> list[str]:
        """Labels the bot added to this issue (in dry-run: would have added)."""
        with self.session() as s:
            return list(s.execute(select(AppliedLabelRow.label).where(
                AppliedLabelRow.repo == repo, AppliedLabelRow.issue_number == issue_number,
                AppliedLabelRow.dry_run.is_(dry_run)).order_by(AppliedLabelRow.id)).scalars())

    def bot_acted(self, repo: str, issue_number: int, dry_run: bool = False) -> bool:
        """True once the bot added a label or posted a suggestion on this issue."""
        with self.session() as s:
            if s.execute(select(AppliedLabelRow.id).where(
                    AppliedLabelRow.repo == repo, AppliedLabelRow.issue_number == issue_number,
                    AppliedLabelRow.dry_run.is_(dry_run)).limit(1)).first():
                return True
            return s.execute(select(CommentRow.id).where(CommentRow.repo == repo, CommentRow.issue_number == issue_number,
                                                         CommentRow.dry_run.is_(dry_run))).first() is not None

    def removed_labels(self, repo: str, issue_number: int) -> list[str]:
        with self.session() as s:
            return sorted(set(s.execute(select(HumanLabelEventRow.label).where(
                HumanLabelEventRow.repo == repo, HumanLabelEventRow.issue_number == issue_number,
                HumanLabelEventRow.action == "removed")).scalars()))

    def comment(self, repo: str, issue_number: int) -> dict[str, Any] | None:
        with self.session() as s:
            row = s.execute(select(CommentRow).where(CommentRow.repo == repo,
                                                     CommentRow.issue_number == issue_number)).scalar_one_or_none()
            return None if row is None else {"comment_id": row.comment_id, "body": row.body, "dry_run": row.dry_run}

    def save_comment(self, repo: str, issue_number: int, comment_id: int | None, body: str, *, dry_run: bool) -> None:
        now = self.clock()
        with self.session.begin() as s:
            row = s.execute(select(CommentRow).where(CommentRow.repo == repo,
                                                     CommentRow.issue_number == issue_number)).scalar_one_or_none()
            if row is None:
                s.add(CommentRow(repo=repo, issue_number=issue_number, comment_id=comment_id, body=body,
                                 dry_run=dry_run, created_at=now, updated_at=now))
            else:
                row.comment_id, row.body, row.dry_run, row.updated_at = comment_id, body, dry_run, now

    def record_human_label(self, *, delivery_id: str, repo: str, issue_number: int, label: str, action: str,
                           actor: str | None, after_bot: bool, title: str, body: str,
                           labels_after: list[str]) -> bool:
        try:
            with self.session.begin() as s:
                s.add(HumanLabelEventRow(delivery_id=delivery_id, repo=repo, issue_number=issue_number,
                                         label=label, action=action, actor=actor, after_bot=after_bot,
                                         title=title, body=body, labels_after=json.dumps(labels_after),
                                         created_at=self.clock()))
        except IntegrityError:
            return False
        return True

    def set_served(self, repos: list[str], installation_id: int | None, active: bool) -> None:
        now = self.clock()
        with self.session.begin() as s:
            for name in repos:
                row = s.execute(select(ServedRepoRow).where(ServedRepoRow.repo == name)).scalar_one_or_none()
                if row is None:
                    s.add(ServedRepoRow(repo=name, installation_id=installation_id, active=active, updated_at=now))
                else:
                    row.installation_id, row.active, row.updated_at = installation_id, active, now

    def deactivate_installation(self, installation_id: int) -> None:
        with self.session.begin() as s:
            s.execute(update(ServedRepoRow).where(ServedRepoRow.installation_id == installation_id)
                      .values(active=False, updated_at=self.clock()))

    # -- export for retraining -------------------------------------------------------------
    def corrections(self) -> Iterator[dict[str, Any]]:
        """One row per issue a human relabelled after the bot acted: the issue text, what the
        bot predicted and applied, what people added and removed, and the labels the human
        settled on (the issue's labels after the last human change)."""
        with self.session() as s:
            events = s.execute(select(HumanLabelEventRow).where(HumanLabelEventRow.after_bot.is_(True))
                               .order_by(HumanLabelEventRow.id)).scalars().all()
            by_issue: dict[tuple[str, int], list[HumanLabelEventRow]] = {}
            for e in events:
                by_issue.setdefault((e.repo, e.issue_number), []).append(e)
            for (repo, number), evs in by_issue.items():
                pred = s.execute(select(PredictionRow).where(PredictionRow.repo == repo,
                                                             PredictionRow.issue_number == number)
                                 .order_by(PredictionRow.id.desc()).limit(1)).scalar_one_or_none()
                applied = list(s.execute(select(AppliedLabelRow.label).where(
                    AppliedLabelRow.repo == repo, AppliedLabelRow.issue_number == number)).scalars())
                last = evs[-1]
                yield {
                    "repo": repo, "number": number,
                    "title": last.title, "body": last.body,
                    "text": issue_text(last.title, last.body),
                    "labels": json.loads(last.labels_after),
                    "bot_applied": applied,
                    "bot_predicted": json.loads(pred.decision) if pred else None,
                    "model": pred.model if pred else None,
                    "added": [e.label for e in evs if e.action == "added"],
                    "removed": [e.label for e in evs if e.action == "removed"],
                    "corrected_at": _iso(last.created_at),
                }
