"""Load benchmark of the bot: webhook server + worker on 127.0.0.1, a load generator in
another process, signed ``issues.opened`` events at rising rates.

    python experiments/bot_load.py --rates 5,10,20,40 --n 40

The server is ``issue-labeler serve`` (web app and huey worker in one process) in dry-run
mode (no GitHub credentials, so nothing leaves the machine) with the default model: a trained
bundle if ``--bundle`` is given, else the zero-shot fallback on GitHub's default labels.
Every tenth event is sent twice with the same ``X-GitHub-Delivery`` (a redelivery).

Printed per rate step: events sent, accepted events/s, acknowledgement latency p50/p99 (ms),
events processed, lost (accepted but never processed; must be 0), doubled (issues whose
labels were decided more than once; must be 0), and the seconds from delivery to labels
decided (p50/p99, queueing included). Traffic goes only to 127.0.0.1; every step is bounded
by ``--n`` events and the whole run by ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TITLES = ["Crash when loading a parquet file", "Add streaming support for audio datasets",
          "Typo in the documentation of load_dataset", "How do I cache a dataset on S3?",
          "Feature request: zstd compression", "Segfault in the reader with nested columns",
          "The tutorial page has a broken link", "Question about num_proc and memory use"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


def generate(url: str, secret: str, rate: float, n: int, first_number: int, out: "mp.Queue", nonce: str = "") -> None:
    """The load generator (runs in its own process): open-loop, event i is sent at
    t0 + i / rate whatever the answers, from a pool of threads."""
    import requests

    from bot.sansio import sign

    local = threading.local()

    def session():
        if not hasattr(local, "s"):
            local.s = requests.Session()
        return local.s

    def send(i: int, delivery_id: str, body: bytes, due: float) -> dict:
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        headers = {"Content-Type": "application/json", "X-GitHub-Event": "issues",
                   "X-GitHub-Delivery": delivery_id, "X-Hub-Signature-256": sign(body, secret),
                   "User-Agent": "GitHub-Hookshot/bot-load"}
        start = time.perf_counter()
        try:
            r = session().post(url, data=body, headers=headers, timeout=10)
            status = r.status_code
        except requests.RequestException:
            status = 0
        return {"i": i, "delivery": delivery_id, "status": status, "latency": time.perf_counter() - start,
                "sent_at": start, "done_at": time.perf_counter()}

    jobs = []
    t0 = time.perf_counter() + 0.2
    for i in range(n):
        number = first_number + i
        payload = {"action": "opened",
                   "issue": {"number": number, "title": f"{TITLES[number % len(TITLES)]} (run {nonce} #{number})",
                             "body": "Steps to reproduce: run the example. Expected: it works." if number % 3 else None,
                             "user": {"login": f"user{number}", "type": "User"}, "labels": [], "state": "open"},
                   "repository": {"full_name": "bench/repo", "default_branch": "main"},
                   "sender": {"login": f"user{number}", "type": "User"}}
        jobs.append((i, str(uuid.uuid4()), json.dumps(payload).encode(), t0 + i / rate))
        if i % 10 == 9:  # a redelivery of this event, a little later
            jobs.append((i, jobs[-1][1], jobs[-1][2], t0 + (i + 0.5) / rate))
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda j: send(*j), jobs))
    out.put(results)


def wait_healthy(base: str, timeout: float = 60) -> dict:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return requests.get(f"{base}/healthz", timeout=2).json()
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit("the server did not come up")


def unfinished(db: Path) -> int:
    with sqlite3.connect(db) as c:
        return c.execute("select count(*) from deliveries where status in ('queued','processing','retry')").fetchone()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="5,10,20,40", help="events per second, one step each")
    ap.add_argument("--n", type=int, default=40, help="events per step (plus 10%% redeliveries)")
    ap.add_argument("--workers", type=int, default=1, help="worker threads in the server")
    ap.add_argument("--bundle", help="a trained bundle (default: the zero-shot fallback)")
    ap.add_argument("--max-seconds", type=float, default=300, help="bound on the whole run")
    ap.add_argument("--output", type=Path, help="also write the table (markdown) here")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    started = time.monotonic()

    tmp = Path(tempfile.mkdtemp(prefix="bot-load-"))
    secret = secrets.token_hex(16)
    nonce = secrets.token_hex(4)  # new texts every run: no embedding cache can answer for the model
    port = free_port()
    env = {**os.environ, "GITHUB_WEBHOOK_SECRET": secret,
           "ISSUE_LABELER_DATABASE_URL": f"sqlite:///{tmp / 'store.sqlite3'}",
           "ISSUE_LABELER_QUEUE_URL": f"sqlite:///{tmp / 'queue.sqlite3'}",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for var in ("GITHUB_TOKEN", "GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "ISSUE_LABELER_CONFIG"):
        env.pop(var, None)
    if args.bundle:
        env["ISSUE_LABELER_BUNDLE"] = args.bundle
    else:
        env.pop("ISSUE_LABELER_BUNDLE", None)
    log = open(tmp / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", str(args.workers), "--log-level", "WARNING"],
                              env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    base = f"http://127.0.0.1:{port}"
    db = tmp / "store.sqlite3"
    try:
        health = wait_healthy(base)
        model = health["model"]
        # warm-up: the first event loads the model
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        t = time.perf_counter()
        p = ctx.Process(target=generate, args=(f"{base}/webhook", secret, 1.0, 1, 0, q, nonce))
        p.start()
        q.get(timeout=60)
        p.join()
        while unfinished(db) and time.monotonic() - started < args.max_seconds:
            time.sleep(0.05)
        warmup = time.perf_counter() - t

        rows = []
        number = 1000
        for rate in rates:
            if time.monotonic() - started > args.max_seconds:
                print(f"stopping: --max-seconds {args.max_seconds} reached", file=sys.stderr)
                break
            p = ctx.Process(target=generate, args=(f"{base}/webhook", secret, rate, args.n, number, q, nonce))
            p.start()
            results = q.get(timeout=args.max_seconds)
            p.join()
            while unfinished(db) and time.monotonic() - started < args.max_seconds:
                time.sleep(0.05)
            # a delivery is accepted when one of its sends got 202; the other send of a
            # redelivered pair must get 200 "duplicate" (whichever reached the server first)
            accepted_ids = sorted({r["delivery"] for r in results if r["status"] == 202})
            n_redelivered = len(results) - len({r["delivery"] for r in results})
            dup_acks = sum(1 for r in results if r["status"] == 200)
            span = max(r["done_at"] for r in results) - min(r["sent_at"] for r in results)
            lat = [r["latency"] * 1000 for r in results]
            ids = accepted_ids
            with sqlite3.connect(db) as c:
                marks = ",".join("?" * len(ids))
                done = c.execute(f"select count(*) from deliveries where status='done' and delivery_id in ({marks})",
                                 ids).fetchone()[0]
                decided = [s for (s,) in c.execute(f"select seconds from predictions where delivery_id in ({marks})", ids)]
                doubled = c.execute(f"select count(*) from (select issue_number from predictions where issue_number "
                                    f"between ? and ? group by issue_number having count(*) > 1)",
                                    (number, number + args.n - 1)).fetchone()[0]
            rows.append({"rate": rate, "sent": len(results), "redeliveries": n_redelivered, "dup_acks": dup_acks,
                         "errors": sum(1 for r in results if r["status"] not in (200, 202)),
                         "accepted_per_s": len(ids) / span if span else float("nan"),
                         "ack_p50": percentile(lat, 50), "ack_p99": percentile(lat, 99),
                         "accepted": len(ids), "processed": done, "lost": len(ids) - done,
                         "doubled": doubled, "decide_p50": percentile(decided, 50),
                         "decide_p99": percentile(decided, 99)})
            number += args.n
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    head = ("| target events/s | sent (redeliveries) | accepted events/s | ack p50 ms | ack p99 ms | processed "
            "| lost | doubled | delivery->labels p50 s | p99 s |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(f"| {r['rate']:g} | {r['sent']} ({r['redeliveries']} redelivered, {r['dup_acks']} acked as duplicate, {r['errors']} errors) "
                     f"| {r['accepted_per_s']:.1f} | {r['ack_p50']:.1f} | {r['ack_p99']:.1f} | "
                     f"{r['processed']}/{r['accepted']} | {r['lost']} | {r['doubled']} | {r['decide_p50']:.2f} | "
                     f"{r['decide_p99']:.2f} |")
    info = (f"model: {model}; workers: {args.workers}; first event (model load included): {warmup:.1f} s; "
            f"dry-run, server and load generator on 127.0.0.1, {os.cpu_count()} CPU cores")
    table = "\n".join(lines)
    print(info)
    print(table)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(f"# Bot load benchmark\n\n`python experiments/bot_load.py {' '.join(sys.argv[1:])}`\n\n"
                               f"{info}\n\n{table}\n")


if __name__ == "__main__":
    main()
