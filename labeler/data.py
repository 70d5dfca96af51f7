"""Loading GitHub issues from JSONL (the REST API issue object, gzip or plain) and CSV.

Every loader returns :class:`Issue` records; ``Issue.text`` is ``title + "\\n\\n" + body``
(a null body is empty), the text every strategy sees. Duplicate texts are dropped (the
first kept) and counted, pull requests are kept or excluded by a flag, and ``created_at``
is kept for time-ordered splits.

Accepted shapes:

* JSONL: one issue object per line; ``labels`` as REST label objects (``{"name": ...}``),
  plain strings, or one comma/semicolon-separated string. Files written by
  ``issue-labeler split`` (and ``fetch``) load the same way.
* CSV: a title and a body column, or one text column; a label column holding one name or a
  comma/semicolon-separated list. Column names are options (``--text-column``,
  ``--title-column``, ``--body-column``, ``--label-column``), so a file with columns
  ``repo,created_at,label,title,body`` loads with ``--label-column label``.
"""

from __future__ import annotations

import csv
import sys
import gzip
import io
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from labeler.errors import DataError

_SPLIT_LABELS = re.compile(r"\s*[,;]\s*")


@dataclass
class Issue:
    title: str
    body: str = ""
    labels: list[str] = field(default_factory=list)
    number: int | None = None
    id: int | str | None = None
    created_at: str | None = None
    is_pull_request: bool = False

    @property
    def text(self) -> str:
        return issue_text(self.title, self.body)

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    def metadata(self) -> dict[str, Any]:
        """What a strategy may keep about a training issue to show it later (e.g. knn's
        similar issues in ``explain``): its number, id and title, those that are known (a CSV
        row may have no number or id; knn then shows the row number)."""
        record = {"number": self.number, "id": self.id, "title": self.title}
        return {k: v for k, v in record.items() if v is not None}


@dataclass
class LoadOptions:
    """How to read a file: the CLI's data flags, in one place."""

    format: str | None = None  # "jsonl" or "csv"; None = from the file name
    text_column: str | None = None
    title_column: str = "title"
    body_column: str = "body"
    label_column: str = "labels"
    include_pull_requests: bool = True
    deduplicate: bool = True


@dataclass
class LoadResult:
    issues: list[Issue]
    n_read: int
    n_duplicates: int
    n_pull_requests_dropped: int

    def summary(self) -> str:
        parts = [f"{len(self.issues)} issues", f"{self.n_duplicates} duplicate texts dropped"]
        if self.n_pull_requests_dropped:
            parts.append(f"{self.n_pull_requests_dropped} pull requests excluded")
        return ", ".join(parts)


def issue_text(title: str | None, body: str | None) -> str:
    """The text strategies see: title, a blank line, body (a null body is empty)."""
    return f"{title or ''}\n\n{body or ''}"


def parse_labels(value: Any) -> list[str]:
    """Label names from REST label objects, plain strings, or a separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [name for name in _SPLIT_LABELS.split(value.strip()) if name]
    names = []
    for item in value:
        if isinstance(item, dict):
            name = item.get("name")
        else:
            name = item
        if isinstance(name, str) and name.strip():
            names.append(name.strip())
    return names


def issue_from_object(obj: dict[str, Any]) -> Issue:
    """An :class:`Issue` from a REST API issue object (or a record written by ``split``)."""
    if not isinstance(obj, dict):
        raise ValueError("an issue must be a JSON object")
    title = obj.get("title")
    if title is None and "text" in obj:
        title, body = obj["text"], ""
    else:
        body = obj.get("body")
    pr = obj.get("is_pull_request")
    if pr is None:
        pr = obj.get("pull_request") is not None
    return Issue(title=str(title or ""), body=str(body or ""), labels=parse_labels(obj.get("labels")),
                 number=obj.get("number"), id=obj.get("id"), created_at=obj.get("created_at"),
                 is_pull_request=bool(pr))


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8", newline="")


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """JSON objects of a JSONL file (gzip or plain); a bad line raises :class:`DataError`
    naming the file and line."""
    path = Path(path)
    try:
        fh = _open_text(path)
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, not a data file") from None
    with fh:
        try:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}, line {lineno}: not valid JSON ({exc.msg})") from None
                if not isinstance(obj, dict):
                    raise DataError(f"{path}, line {lineno}: expected a JSON object, got {type(obj).__name__}")
                yield obj
        except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, OSError) as exc:
            raise DataError(f"{path}: cannot be read as text JSONL ({exc})") from None


def _iter_csv(path: Path, opts: LoadOptions) -> Iterator[Issue]:
    try:
        fh = _open_text(path)
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    # csv's default field limit is 131,072 characters; an issue body may be longer
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        needed = [opts.text_column] if opts.text_column else [opts.title_column]
        needed.append(opts.label_column)
        missing = [c for c in needed if c not in columns]
        if missing:
            raise DataError(f"{path}: no column {', '.join(map(repr, missing))}; the columns are "
                            f"{', '.join(columns)} (choose with --text-column/--title-column/--label-column)")
        for row in reader:
            if opts.text_column:
                title, body = row.get(opts.text_column) or "", ""
            else:
                title, body = row.get(opts.title_column) or "", row.get(opts.body_column) or ""
            number = row.get("number")
            yield Issue(title=title, body=body, labels=parse_labels(row.get(opts.label_column)),
                        number=int(number) if number and number.isdigit() else None,
                        id=row.get("id") or None, created_at=row.get("created_at") or None)


def _detect_format(path: Path, fmt: str | None) -> str:
    if fmt:
        if fmt not in ("jsonl", "csv"):
            raise DataError(f"unknown data format {fmt!r}: use jsonl or csv")
        return fmt
    suffixes = [s.lower() for s in path.suffixes]
    return "csv" if ".csv" in suffixes else "jsonl"


def iter_issues(path: str | Path, opts: LoadOptions | None = None) -> Iterator[Issue]:
    """Issues of a file, as they come (no de-duplication or filtering)."""
    opts = opts or LoadOptions()
    path = Path(path)
    if _detect_format(path, opts.format) == "csv":
        yield from _iter_csv(path, opts)
        return
    for obj in iter_jsonl(path):
        if opts.text_column and opts.text_column in obj:
            obj = {**obj, "title": obj[opts.text_column], "body": ""}
        elif opts.title_column != "title" or opts.body_column != "body":
            obj = {**obj, "title": obj.get(opts.title_column), "body": obj.get(opts.body_column)}
        if opts.label_column != "labels":
            obj = {**obj, "labels": obj.get(opts.label_column)}
        yield issue_from_object(obj)


def load_issues(path: str | Path, opts: LoadOptions | None = None) -> LoadResult:
    """All issues of a file, duplicates of an earlier text dropped (and counted), pull
    requests excluded when ``opts.include_pull_requests`` is false."""
    opts = opts or LoadOptions()
    seen: set[str] = set()
    issues: list[Issue] = []
    n_read = n_dup = n_pr = 0
    for issue in iter_issues(path, opts):
        n_read += 1
        if issue.is_pull_request and not opts.include_pull_requests:
            n_pr += 1
            continue
        if opts.deduplicate:
            text = issue.text
            if text in seen:
                n_dup += 1
                continue
            seen.add(text)
        issues.append(issue)
    return LoadResult(issues, n_read, n_dup, n_pr)


def binarize(label_sets: Sequence[Iterable[str]], labels: Sequence[str]) -> "np.ndarray":
    """Label sets to a 0/1 matrix over ``labels`` (names not in ``labels`` are ignored)."""
    import numpy as np

    index = {label: j for j, label in enumerate(labels)}
    y = np.zeros((len(label_sets), len(labels)), dtype=np.int8)
    for i, names in enumerate(label_sets):
        for name in names:
            if name in index:
                y[i, index[name]] = 1
    return y


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records as JSONL (gzip when the name ends in .gz); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    n = 0
    with opener(path, "wt", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n
