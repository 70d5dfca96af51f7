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

Every issue keeps its input record (``Issue.raw``: the CSV row or the JSONL object) and its
position (``Issue.row``), so ``split`` writes the records back unchanged, ``--where`` filters
on any column and ``evaluate --by`` groups by one.
"""

from __future__ import annotations

import csv
import sys
import gzip
import io
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
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
    #: the input record as read (a CSV row or a JSONL object), written back unchanged by ``split``
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    #: 1-based position of the record in its file (a CSV data row or a JSONL object)
    row: int | None = field(default=None, repr=False, compare=False)

    @property
    def text(self) -> str:
        return issue_text(self.title, self.body)

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record.pop("raw")
        record.pop("row")
        return record

    def column(self, name: str) -> Any:
        """The value of an input column (CSV) or top-level field (JSONL); None when absent."""
        return (self.raw or {}).get(name)

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
    #: keep only records whose column equals one of the values: ``{"repo": ["a/b", "c/d"]}``
    #: (several columns: all must match)
    where: dict[str, list[str]] = field(default_factory=dict)

    #: the options a bundle or split.json records about how its data was read
    RECORDED = ("format", "text_column", "title_column", "body_column", "label_column", "include_pull_requests")

    def recorded(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.RECORDED}


def parse_where(items: Sequence[str] | None) -> dict[str, list[str]]:
    """``["repo=a/b", "repo=c/d", "state=open"]`` -> ``{"repo": ["a/b", "c/d"], "state": ["open"]}``."""
    where: dict[str, list[str]] = {}
    for item in items or []:
        column, sep, value = item.partition("=")
        if not sep or not column.strip():
            raise DataError(f"--where takes COLUMN=VALUE, got {item!r}")
        where.setdefault(column.strip(), []).append(value)
    return where


def matches(record: dict[str, Any], where: dict[str, list[str]]) -> bool:
    for column, values in where.items():
        value = record.get(column)
        if value is None or (str(value) if not isinstance(value, bool) else str(value).lower()) not in values:
            return False
    return True


@dataclass
class LoadResult:
    issues: list[Issue]
    n_read: int
    n_duplicates: int
    n_pull_requests_dropped: int
    n_filtered: int = 0
    #: "csv" or "jsonl"
    format: str = "jsonl"
    #: the CSV header (None for JSONL)
    columns: list[str] | None = None

    def summary(self) -> str:
        parts = [f"{len(self.issues)} issues", f"{self.n_duplicates} duplicate texts dropped"]
        if self.n_filtered:
            parts.append(f"{self.n_filtered} not matching --where")
        if self.n_pull_requests_dropped:
            parts.append(f"{self.n_pull_requests_dropped} pull requests excluded")
        return ", ".join(parts)


def parse_time(value: str) -> datetime:
    """An ISO 8601 time as GitHub writes it (``2017-10-10T16:00:00Z``), timezone-aware (UTC
    when it names no zone). Raises :class:`ValueError` for anything else."""
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


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


def _open_data(path: Path) -> io.TextIOBase:
    """:func:`_open_text` with the user's mistakes (no such file, a directory) as DataError."""
    try:
        return _open_text(path)
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, not a data file") from None


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """JSON objects of a JSONL file (gzip or plain); a bad line raises :class:`DataError`
    naming the file and line."""
    path = Path(path)
    fh = _open_data(path)
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


def _iter_csv(path: Path, opts: LoadOptions, columns_out: list | None = None) -> Iterator[Issue]:
    fh = _open_data(path)
    with fh:
        yield from iter_csv_stream(fh, opts, str(path), columns_out)


def iter_csv_stream(fh: Iterable[str], opts: LoadOptions, name: str = "stdin", columns_out: list | None = None,
                    need_labels: bool = True) -> Iterator[Issue]:
    """Issues of CSV text (a file handle or stdin); ``columns_out`` receives the header."""
    # csv's default field limit is 131,072 characters; an issue body may be longer
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        if columns_out is not None:
            columns_out[:] = columns
        needed = [opts.text_column] if opts.text_column else [opts.title_column]
        if need_labels:
            needed.append(opts.label_column)
        missing = [c for c in needed if c not in columns]
        if missing:
            raise DataError(f"{name}: no column {', '.join(map(repr, missing))}; the columns are "
                            f"{', '.join(columns) or '(none)'} (choose with --text-column/--title-column/--label-column)")
        for rowno, row in enumerate(reader, 1):
            if opts.text_column:
                title, body = row.get(opts.text_column) or "", ""
            else:
                title, body = row.get(opts.title_column) or "", row.get(opts.body_column) or ""
            number = row.get("number")
            yield Issue(title=title, body=body, labels=parse_labels(row.get(opts.label_column)),
                        number=int(number) if number and number.isdigit() else None,
                        id=row.get("id") or None, created_at=row.get("created_at") or None,
                        raw=dict(row), row=rowno)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{name}: cannot be read as CSV ({exc})") from None


def issue_from_jsonl(obj: dict[str, Any], opts: LoadOptions, row: int | None = None) -> Issue:
    """An :class:`Issue` from a JSONL object read with the column options of ``opts``."""
    original = obj
    if opts.text_column and opts.text_column in obj:
        obj = {**obj, "title": obj[opts.text_column], "body": ""}
    elif opts.title_column != "title" or opts.body_column != "body":
        obj = {**obj, "title": obj.get(opts.title_column), "body": obj.get(opts.body_column)}
    if opts.label_column != "labels":
        obj = {**obj, "labels": obj.get(opts.label_column)}
    issue = issue_from_object(obj)
    issue.raw, issue.row = original, row
    return issue


def _detect_format(path: Path, fmt: str | None) -> str:
    if fmt:
        if fmt not in ("jsonl", "csv"):
            raise DataError(f"unknown data format {fmt!r}: use jsonl or csv")
        return fmt
    suffixes = [s.lower() for s in path.suffixes]
    return "csv" if ".csv" in suffixes else "jsonl"


def detect_format(path: str | Path, fmt: str | None = None) -> str:
    """``fmt`` checked, or the format of the file name (``.csv``, ``.csv.gz``: csv; else jsonl)."""
    return _detect_format(Path(path), fmt)


def iter_issues(path: str | Path, opts: LoadOptions | None = None, columns_out: list | None = None) -> Iterator[Issue]:
    """Issues of a file, as they come (no de-duplication or filtering)."""
    opts = opts or LoadOptions()
    path = Path(path)
    if _detect_format(path, opts.format) == "csv":
        yield from _iter_csv(path, opts, columns_out)
        return
    for rowno, obj in enumerate(iter_jsonl(path), 1):
        yield issue_from_jsonl(obj, opts, rowno)


def read_issues(path: str | Path | None, opts: LoadOptions, stdin: Iterable[str] | None = None) -> list[Issue]:
    """Every record of a file, or of ``stdin`` when ``path`` is None or ``-``, as issues for
    prediction: no label column needed, no de-duplication. The format is ``opts.format``,
    else the file name's; on stdin a first character ``{`` means JSONL, anything else CSV."""
    if path is not None and str(path) != "-":
        path = Path(path)
        if _detect_format(path, opts.format) == "jsonl":
            return [issue_from_jsonl(obj, opts, n) for n, obj in enumerate(iter_jsonl(path), 1)]
        fh = _open_data(path)
        with fh:
            return list(iter_csv_stream(fh, opts, str(path), need_labels=False))
    lines = list(stdin or [])
    first = next((line.lstrip() for line in lines if line.strip()), "")
    fmt = opts.format or ("jsonl" if first.startswith("{") or not first else "csv")
    if fmt == "csv":
        return list(iter_csv_stream(lines, opts, "stdin", need_labels=False))
    issues = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            issues.append(issue_from_jsonl(obj, opts, lineno))
        except (json.JSONDecodeError, ValueError, AttributeError) as exc:
            raise DataError(f"stdin, line {lineno}: not a JSON issue object ({exc})") from None
    return issues


def load_issues(path: str | Path, opts: LoadOptions | None = None) -> LoadResult:
    """All issues of a file, duplicates of an earlier text dropped (and counted), pull
    requests excluded when ``opts.include_pull_requests`` is false."""
    opts = opts or LoadOptions()
    seen: set[str] = set()
    issues: list[Issue] = []
    n_read = n_dup = n_pr = n_filtered = 0
    columns: list[str] = []
    where_seen: set[str] = set()
    for issue in iter_issues(path, opts, columns):
        n_read += 1
        if opts.where:
            where_seen.update(c for c in opts.where if c in (issue.raw or {}))
        if opts.where and not matches(issue.raw or {}, opts.where):
            n_filtered += 1
            continue
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
    if opts.where and n_read:
        absent = [c for c in opts.where if c not in where_seen and c not in columns]
        if absent:
            raise DataError(f"{path}: no record has a column {', '.join(map(repr, absent))} (--where)"
                            + (f"; the columns are {', '.join(columns)}" if columns else ""))
    fmt = _detect_format(Path(path), opts.format)
    return LoadResult(issues, n_read, n_dup, n_pr, n_filtered, fmt, columns if fmt == "csv" else None)


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
