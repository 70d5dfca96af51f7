"""The ``issue-labeler`` console script: the labeler's commands (``labeler.cli``) plus the
bot's own (``serve``, ``backfill``, ``send-example``, ``export-corrections``, ``deliveries``). Lives in ``bot`` so that the
dependency runs one way: bot -> labeler, never back (through :mod:`bot.predictor`, like
every bot module)."""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import uuid
from pathlib import Path
from typing import Optional

import typer

from bot.predictor import labeler_cli, labeler_cli_context
from bot.settings import mask_url

app = labeler_cli()


def repo_label_map(repo: str, token: str | None, base_url: str) -> dict | None:
    """``retrain``'s label set for ``repo`` when no ``--label-map`` is given: the repository's
    labels the bot may apply, as its ``.github/issue-labeler.yml`` says (defaults when there
    is none), named through its aliases (:func:`bot.policy.training_label_map`). None
    without a token (the bot's GitHub client needs one): retrain then learns every label in
    the data. A config file that does not parse is a ``ValueError`` (bad input)."""
    from bot.config import CONFIG_PATH, parse_config
    from bot.github import PyGithubClient
    from bot.policy import training_label_map

    if not token:
        typer.echo(f"no GitHub token: {CONFIG_PATH} and the labels of {repo} are not read", err=True)
        return None
    client = PyGithubClient(token=token, base_url=base_url)
    config, problem = parse_config(client.config_text(repo, None))
    if config is None:
        raise ValueError(problem)
    return training_label_map(config, client.labels(repo, None))


@app.callback()
def _context(ctx: typer.Context) -> None:
    # what the labeler's commands may ask of the bot: retrain's label set from the repository
    ctx.obj = labeler_cli_context(repo_label_map=repo_label_map)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


EXAMPLE_ISSUE = {
    "action": "opened",
    "issue": {"number": 1, "title": "Crash when loading a parquet file",
              "body": "Traceback (most recent call last): ... segmentation fault in the reader",
              "user": {"login": "octocat", "type": "User"}, "labels": [], "state": "open"},
    "repository": {"full_name": "octocat/Hello-World", "default_branch": "main"},
    "sender": {"login": "octocat", "type": "User"},
}


def example_delivery(secret: str, payload: dict | None = None, event: str = "issues",
                     delivery_id: str | None = None) -> tuple[dict[str, str], bytes]:
    """Headers and body of a signed delivery, as GitHub would send it."""
    from bot.sansio import sign

    body = json.dumps(payload or EXAMPLE_ISSUE).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event,
               "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
               "X-Hub-Signature-256": sign(body, secret), "User-Agent": "GitHub-Hookshot/issue-labeler-example"}
    return headers, body


def curl_command(url: str, headers: dict[str, str], body: bytes) -> str:
    import shlex

    parts = ["curl", "-sS", "-X", "POST", shlex.quote(url)]
    for k, v in headers.items():
        parts += ["-H", shlex.quote(f"{k}: {v}")]
    parts += ["--data-binary", shlex.quote(body.decode())]
    return " ".join(parts)


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="address to listen on"),
          port: int = typer.Option(8000, help="port to listen on"),
          workers: int = typer.Option(1, help="worker threads labelling issues"),
          http_threads: int = typer.Option(8, help="threads answering HTTP requests (a fixed pool)"),
          generate_secret: bool = typer.Option(False, "--generate-secret",
                                               help="no GITHUB_WEBHOOK_SECRET? make a random one for this run "
                                                    "and print a signed example delivery (local trials only)"),
          log_level: str = typer.Option("INFO", help="logging level")) -> None:
    """Run the webhook server and the labelling worker together (one machine).

    For production run them separately: gunicorn/waitress for ``bot.app:create_app_from_env()``
    and ``huey_consumer bot.huey_app.huey`` (see bot/README.md)."""
    from bot.app import create_app
    from bot.predictor import PredictorUnavailable
    from bot.queue import TaskQueue, make_huey
    from bot.settings import Settings, SettingsError, build_worker, check_backends

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        if not settings.webhook_secret and generate_secret:
            settings.webhook_secret = secrets.token_hex(20)
            os.environ["GITHUB_WEBHOOK_SECRET"] = settings.webhook_secret
            generated = True
        else:
            generated = False
        secret = settings.require_secret()
        check_backends(settings)  # an unreachable database or queue: refuse to start
        worker = build_worker(settings)
        warning = worker.predictor.check()
    except SettingsError as exc:
        _fail(_one_line(exc))
    except PredictorUnavailable as exc:
        _fail(f"the model bundle cannot be used: {exc}")
    queue = TaskQueue(make_huey(settings.queue_url), lambda: worker)
    # at startup this process is the only worker of this queue: whatever was 'processing' was
    # a task of a previous run that died. (The periodic recovery keeps the 10-minute lease.)
    queue.recover(stale_after=0, store=worker.store)
    model = worker.predictor.describe()
    web = create_app(secret=secret, store=worker.store, queue=queue, model=model, dry_run=settings.dry_run,
                     bot_logins=settings.bot_logins, registry=worker.predictor.registry_status)
    from bot.server import serve_in_thread

    try:  # waitress: a fixed thread pool, idle connections time out, 413 before buffering
        server = serve_in_thread(web, host, port, threads=http_threads)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {_one_line(exc)}")
    bound = server.effective_port
    url = f"http://{host}:{bound}/webhook"
    typer.echo(f"issue-labeler: webhook on {url}, health on http://{host}:{bound}/healthz")
    typer.echo(f"  model: {model}; {'DRY-RUN (no GitHub credentials: nothing is written to GitHub)' if settings.dry_run else 'live'}")
    typer.echo(f"  store: {mask_url(settings.database_url)}; queue: {mask_url(settings.queue_url)}")
    if warning:
        typer.echo(f"  WARNING: {warning}", err=True)
    if generated:
        headers, body = example_delivery(secret)
        typer.echo(f"  generated webhook secret for this run: {secret}")
        typer.echo("  a signed example delivery, ready to paste in another terminal:\n")
        typer.echo("  " + curl_command(url, headers, body) + "\n")
    consumer = queue.huey.create_consumer(workers=workers, worker_type="thread", initial_delay=0.05,
                                          max_delay=0.5, backoff=1.1, periodic=True)
    try:
        consumer.run()  # blocks; Ctrl-C / SIGTERM stop it gracefully
    finally:
        server.close()


@app.command("send-example")
def send_example(url: str = typer.Option("http://127.0.0.1:8000/webhook", help="webhook URL"),
                 secret: Optional[str] = typer.Option(None, envvar="GITHUB_WEBHOOK_SECRET",
                                                      help="webhook secret (default: $GITHUB_WEBHOOK_SECRET)"),
                 payload: Optional[Path] = typer.Option(None, help="JSON payload file (default: an issues.opened)"),
                 event: str = typer.Option("issues", help="X-GitHub-Event"),
                 print_only: bool = typer.Option(False, "--print", help="print a curl command instead of sending")) -> None:
    """Send (or print as curl) a signed example delivery to a running server."""
    if not secret:
        _fail("no secret: pass --secret or set GITHUB_WEBHOOK_SECRET")
    data = json.loads(payload.read_text()) if payload else None
    headers, body = example_delivery(secret, data, event)
    if print_only:
        typer.echo(curl_command(url, headers, body))
        return
    import requests

    try:
        response = requests.post(url, data=body, headers=headers, timeout=10)
    except requests.RequestException as exc:
        _fail(f"could not reach {url}: {exc}", 1)
    typer.echo(f"{response.status_code} {response.text.strip()}")


@app.command("export-corrections")
def export_corrections(output: Optional[Path] = typer.Option(None, "--output", "-o",
                                                             help="JSONL file (default: stdout)"),
                       database_url: Optional[str] = typer.Option(None, envvar="ISSUE_LABELER_DATABASE_URL",
                                                                  help="store URL")) -> None:
    """Write the human corrections after the bot acted as JSONL, one issue a line: the issue
    text, what the bot predicted and applied, and the labels people settled on."""
    from bot.store import DEFAULT_DATABASE_URL, Store

    store = Store(database_url or DEFAULT_DATABASE_URL)
    out = output.open("w", encoding="utf-8") if output else sys.stdout
    n = 0
    try:
        for row in store.corrections():
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    finally:
        if output:
            out.close()
    typer.echo(f"{n} corrected issue(s) exported", err=True)


@app.command()
def backfill(repo: str = typer.Argument(..., metavar="OWNER/REPO", help="the repository"),
             apply: bool = typer.Option(False, "--apply", help="add the labels and post the suggestion comments "
                                                              "(default: a dry run that writes nothing)"),
             limit: Optional[int] = typer.Option(None, min=1, help="assess at most this many issues (newest first)"),
             precision: Optional[float] = typer.Option(None, min=0.5, max=1.0,
                                                       help="how sure the model must be to apply a label "
                                                            "(default: the repo config's precision)"),
             database_url: Optional[str] = typer.Option(None, envvar="ISSUE_LABELER_DATABASE_URL",
                                                        help="store URL")) -> None:
    """Label the open issues the bot never saw: those with none of the labels it can apply.

    A dry run by default: a table of what it would apply and suggest, with scores. The same
    settings as ``serve`` (GitHub App or token, ISSUE_LABELER_BUNDLE, ...) and the same
    policy as the bot (the repo config; never a label a human removed). Resumable: issues
    the bot decided before (recorded in the store) are skipped."""
    from bot.backfill import BackfillError, backfill as run_backfill
    from bot.settings import Settings, SettingsError, build_worker

    if repo.count("/") != 1 or not all(repo.split("/")):
        _fail(f"repository must be OWNER/REPO, got {repo!r}")
    try:
        settings = Settings.from_env()
        if database_url:
            settings.database_url = database_url
        worker = build_worker(settings)
    except SettingsError as exc:
        _fail(_one_line(exc))
    except Exception as exc:  # unreachable database: one line, not a traceback
        _fail(f"cannot open the store {mask_url(settings.database_url)}: {_one_line(exc)}")
    try:
        report = run_backfill(worker, repo, apply=apply, limit=limit, precision=precision)
    except BackfillError as exc:
        _fail(_one_line(exc), 1)
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if report.rows:
        _print_backfill_table(report)
    typer.echo(report.summary())
    if report.stopped:
        raise typer.Exit(1)


def _print_backfill_table(report) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text  # plain text: an issue title like "[bug] x" is not markup

    def labels(pairs: list[tuple[str, float]]) -> str:
        return ", ".join(f"{label} {score:.2f}" for label, score in pairs)

    applied_head, suggested_head = ("applied", "suggested") if report.apply else ("would apply", "would suggest")
    table = Table(header_style="bold")
    for name, kwargs in (("issue", {"justify": "right", "no_wrap": True}), ("title", {"max_width": 40, "no_wrap": True}),
                         (applied_head, {}), (suggested_head, {}), ("best scores", {}), ("note", {})):
        table.add_column(name, **kwargs)
    for r in report.rows:
        applied = labels(r.apply) if (r.written or not report.apply) else ""
        cells = [f"#{r.number}", r.title.replace("\n", " "), applied, labels(r.suggest) if r.commented else "",
                 labels(r.scores), r.note]
        table.add_row(*(Text(c) for c in cells))
    Console(width=None if sys.stdout.isatty() else 160).print(table)  # a pipe gets 160 columns, not 80


deliveries_app = typer.Typer(help="Deliveries in the store: list them, retry failed ones.", no_args_is_help=True)
app.add_typer(deliveries_app, name="deliveries")


def _open_store(database_url: str | None):
    from bot.store import DEFAULT_DATABASE_URL, Store

    url = database_url or DEFAULT_DATABASE_URL
    try:
        return Store(url)
    except Exception as exc:  # unreachable database: one line, not a traceback
        _fail(f"cannot open the store {mask_url(url)}: {_one_line(exc)}")


@deliveries_app.command("list")
def deliveries_list(status: Optional[str] = typer.Option(None, help="only this status (failed, poison, queued, ...)"),
                    limit: int = typer.Option(50, help="at most this many, newest first"),
                    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table"),
                    database_url: Optional[str] = typer.Option(None, envvar="ISSUE_LABELER_DATABASE_URL",
                                                               help="store URL")) -> None:
    """The newest deliveries, with status, attempts and the last error."""
    rows = _open_store(database_url).deliveries(status, limit)
    for r in rows:
        if as_json:
            typer.echo(json.dumps(r))
        else:
            where = f"{r['repo']}#{r['issue_number']}" if r["repo"] else "-"
            error = (r["error"] or "").replace("\n", " ")[:100]
            typer.echo(f"{r['delivery_id']}\t{r['event']}.{r['action'] or ''}\t{where}\t{r['status']}\t"
                       f"attempts={r['attempts']}\t{error}")
    typer.echo(f"{len(rows)} deliver{'y' if len(rows) == 1 else 'ies'}", err=True)


@deliveries_app.command("retry")
def deliveries_retry(delivery_id: Optional[str] = typer.Argument(None, help="the X-GitHub-Delivery id"),
                     all_failed: bool = typer.Option(False, "--all-failed", help="every failed delivery"),
                     database_url: Optional[str] = typer.Option(None, envvar="ISSUE_LABELER_DATABASE_URL",
                                                                help="store URL"),
                     queue_url: Optional[str] = typer.Option(None, envvar="ISSUE_LABELER_QUEUE_URL",
                                                             help="queue URL")) -> None:
    """Put a failed (or poison) delivery, or every failed one, back in the queue with its
    attempts reset. A running worker picks it up (or the next recovery, within minutes)."""
    if bool(delivery_id) == all_failed:
        _fail("give one delivery ID or --all-failed")
    store = _open_store(database_url)
    ids = store.retry(delivery_id, all_failed=all_failed)
    if not ids and delivery_id:
        row = store.delivery(delivery_id)
        _fail(f"no delivery {delivery_id}" if row is None else
              f"delivery {delivery_id} is {row['status']}, not failed or poison", 1)
    try:
        from bot.queue import TaskQueue, make_huey
        from bot.settings import DEFAULT_QUEUE_URL

        queue = TaskQueue(make_huey(queue_url or DEFAULT_QUEUE_URL), lambda: None)
        for d in ids:
            queue.enqueue(d)
    except Exception as exc:  # stored as queued: the worker's recovery enqueues them
        typer.echo(f"warning: could not enqueue ({_one_line(exc)}); the worker's recovery will", err=True)
    typer.echo(f"{len(ids)} deliver{'y' if len(ids) == 1 else 'ies'} queued again")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
