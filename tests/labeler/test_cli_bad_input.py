"""Bad command-line input gets one clear line and exit 2, not a traceback (issue #13)."""

from __future__ import annotations

import csv

from typer.testing import CliRunner

from labeler.cli import app


def _one_error_line(r) -> str:
    assert r.exit_code == 2, r.output
    lines = [l for l in r.output.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    return lines[0]


def test_csv_fields_over_pythons_default_limit_load(tmp_path):
    path = tmp_path / "big.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["title", "body", "labels"])
        for i in range(8):
            w.writerow([f"issue {i}", "x" * 200_000, "bug" if i % 2 else "docs"])  # > 131,072 characters
    r = CliRunner().invoke(app, ["split", str(path), "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output


def test_a_jsonl_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"title": "a", "labels": ["bug"]}\n[1, 2]\n')
    assert "line 2" in _one_error_line(CliRunner().invoke(app, ["split", str(path), "-o", str(tmp_path / "o")]))


def test_a_label_map_naming_labels_that_do_not_occur(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(f'{{"title": "t{i}", "labels": ["bug"]}}\n' for i in range(8)))
    lm = tmp_path / "map.yml"
    lm.write_text("labels:\n  bug: bug\n  nothere: ghost\n")
    line = _one_error_line(CliRunner().invoke(app, ["split", str(data), "-m", str(lm), "-o", str(tmp_path / "o")]))
    assert "ghost" in line
