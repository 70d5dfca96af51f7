import gzip
import json

import pytest

from labeler.data import LoadOptions, issue_text, load_issues, parse_labels
from labeler.errors import DataError


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_text_is_title_blank_line_body_and_null_body_is_empty():
    assert issue_text("Crash", "trace") == "Crash\n\ntrace"
    assert issue_text("Crash", None) == "Crash\n\n"


@pytest.mark.parametrize("value, expected", [
    ([{"name": "bug", "color": "f00"}, {"name": "docs"}], ["bug", "docs"]),
    (["bug", "docs"], ["bug", "docs"]),
    ("bug, docs;question", ["bug", "docs", "question"]),
    (None, []),
    ([], []),
])
def test_label_shapes(value, expected):
    assert parse_labels(value) == expected


def test_jsonl_plain_and_gzip_dedupe_and_prs(tmp_path):
    rows = [
        {"number": 1, "title": "A", "body": None, "labels": [{"name": "bug"}], "created_at": "2024-01-01T00:00:00Z", "pull_request": None},
        {"number": 2, "title": "A", "body": "", "labels": ["bug"], "pull_request": None},  # same text as #1
        {"number": 3, "title": "PR", "body": "x", "labels": [], "pull_request": {"url": "u"}},
    ]
    plain = write(tmp_path / "i.jsonl", rows)
    gz = tmp_path / "i.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (plain, gz):
        result = load_issues(path)
        assert [i.number for i in result.issues] == [1, 3]
        assert result.n_duplicates == 1
        assert result.issues[0].body == "" and result.issues[0].created_at == "2024-01-01T00:00:00Z"
        assert result.issues[1].is_pull_request
    no_prs = load_issues(plain, LoadOptions(include_pull_requests=False))
    assert [i.number for i in no_prs.issues] == [1] and no_prs.n_pull_requests_dropped == 1


def test_bad_json_line_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"title": "ok", "labels": []}\n{not json}\n')
    with pytest.raises(DataError, match="line 2"):
        load_issues(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_issues(tmp_path / "nope.jsonl")


def test_csv_with_flags(tmp_path):
    path = tmp_path / "issues.csv"
    path.write_text('repo,created_at,label,title,body\n'
                    'a/b,2024-01-01,bug,Crash,"it, breaks"\n'
                    'a/b,2024-01-02,"enhancement; docs",Add docs,please\n')
    result = load_issues(path, LoadOptions(label_column="label"))
    assert [(i.title, i.body, i.labels, i.created_at) for i in result.issues] == [
        ("Crash", "it, breaks", ["bug"], "2024-01-01"), ("Add docs", "please", ["enhancement", "docs"], "2024-01-02")]


def test_csv_one_text_column_and_missing_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,labels\nCrash on start,bug\n")
    [issue] = load_issues(path, LoadOptions(text_column="text")).issues
    assert issue.text == "Crash on start\n\n" and issue.labels == ["bug"]
    with pytest.raises(DataError, match="no column 'label'"):
        load_issues(path, LoadOptions(text_column="text", label_column="label"))


def test_real_files_load(shared_data):
    hf = load_issues(shared_data / "hf-datasets-issues.jsonl.gz")
    assert hf.n_read == 7258 and hf.n_duplicates > 0
    sk = load_issues(shared_data / "sklearn-issues.jsonl.gz")
    assert sk.n_read == 2000 and all(isinstance(l, str) for i in sk.issues for l in i.labels)


def test_issue_metadata_keeps_what_is_known():
    from labeler.data import Issue

    assert Issue("Crash", number=7, id=70).metadata() == {"number": 7, "id": 70, "title": "Crash"}
    assert Issue("From a CSV row").metadata() == {"title": "From a CSV row"}
