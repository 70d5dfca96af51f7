"""labeler.augment: seeded copies of training issues that keep code, traces, URLs and
mentions; WordNet set up from Debian's files; only training data ever augmented.

No test needs files installed by hand: WordNet is a tiny one written here in the format of
Debian's files (and copied into an NLTK data directory by ``setup_wordnet``, as for real),
the masked LM a tiny BERT built on the fly (conftest)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from labeler.augment import (WORDNET_FILES, Augmentation, Augmenter, load_wordnet, make_augmenter, prose_lines,
                             setup_wordnet)
from labeler.bundle import Bundle
from labeler.cli import app
from labeler.errors import DataError, ModelNotAvailableError, ParameterError

#: noun synsets of the tiny WordNet ("a" and "2" have synsets in the real one too)
SYNSETS = [["crash", "clash"], ["file", "data_file"], ["error", "mistake"], ["reader", "lector"],
           ["library", "depository_library"], ["great", "outstanding"], ["fails", "flunks"],
           ["a", "angstrom"], ["2", "two"]]

PROTECTED = [
    "```python",
    "reader.crash(file)  # error",
    "```",
    "Traceback (most recent call last):",
    '  File "lib/reader.py", line 12, in crash',
    "ValueError: file error",
    "    indented crash code",
]
TEXT = "\n".join([
    "Crash in the reader: a 2 error",
    "",
    "The file reader fails with `open_file(path)` for @octocat, see https://example.com/crash/error.",
    *PROTECTED,
    "",
    "Thanks, great library.",
])


def write_wordnet_files(directory: Path, synsets=SYNSETS) -> Path:
    """WordNet database files as Debian ships them (no lexnames), with ``synsets`` as nouns;
    the other parts of speech, exceptions and the sense index are empty."""
    directory.mkdir(parents=True, exist_ok=True)
    data, index = b"", {}
    for lemmas in synsets:
        offset = len(data)  # a data line starts with its own byte offset
        data += (f"{offset:08d} 03 n {len(lemmas):02x} " + "".join(f"{lemma} 0 " for lemma in lemmas)
                 + "000 | a tiny synset  \n").encode()
        for lemma in lemmas:
            index.setdefault(lemma, []).append(offset)
    (directory / "data.noun").write_bytes(data)
    (directory / "index.noun").write_text("".join(
        f"{lemma} n {len(offs)} 0 {len(offs)} 0 {' '.join(f'{o:08d}' for o in offs)}  \n"
        for lemma, offs in sorted(index.items())))
    for name in WORDNET_FILES:
        (directory / name).touch()
    return directory


@pytest.fixture
def nltk_path(monkeypatch):
    """nltk's search path, given back as it was after the test."""
    import nltk

    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))
    return nltk.data.path


@pytest.fixture
def wordnet(tmp_path, nltk_path) -> Path:
    """An NLTK data directory holding the tiny WordNet, installed by setup_wordnet."""
    setup_wordnet(tmp_path / "nltk_data", write_wordnet_files(tmp_path / "debian-wordnet"))
    return tmp_path / "nltk_data"


@pytest.fixture
def synonym(wordnet):
    return make_augmenter("synonym", nltk_data=wordnet)


class Shout(Augmenter):
    """A stand-in augmenter (no model): upper-cases words at random; remembers its texts."""

    name = "shout"
    placeholder = "QQKEEPQQ"

    def __init__(self):
        self.seen: list[str] = []

    def augment_text(self, text: str, seed: int) -> str:
        self.seen.append(text)
        return super().augment_text(text, seed)

    def _augment_lines(self, lines):
        return [" ".join(w.upper() if random.random() < 0.5 else w for w in line.split(" ")) for line in lines]


# -- what is protected -------------------------------------------------------------------------
def test_prose_lines_leave_out_code_traces_and_logs():
    lines = ["Title", "", "```", "code", "~~~ not a fence end", "```", "prose again", "~~~~", "tilde code",
             "~~~~", "    indented", "\tTabbed", "  at org.Foo.bar(Foo.java:12)", "Caused by: x",
             "2024-01-02 10:00:00 INFO started", "[ERROR] boom", "WARNING: disk", "$ pip install x",
             ">>> import x", "panic: runtime error", "> a quoted sentence", "- a list item", "```", "unclosed"]
    kept = [lines[i] for i in prose_lines(lines)]
    assert kept == ["Title", "prose again", "> a quoted sentence", "- a list item"]


def test_synonym_copies_keep_every_protected_span_and_line(synonym):
    copies = Augmentation(synonym, copies=3, seed=0).copies_of(TEXT)
    assert copies and all(c != TEXT for c in copies)
    for copy in copies:
        lines, original = copy.split("\n"), TEXT.split("\n")
        assert len(lines) == len(original)
        assert [i for i, l in enumerate(lines) if not l] == [i for i, l in enumerate(original) if not l]
        assert "\n".join(PROTECTED) in copy  # the code block, traceback and indented code, byte for byte
        for span in ("`open_file(path)`", "@octocat", "https://example.com/crash/error."):
            assert span in lines[2]
        assert " a 2 " in lines[0]  # stop words and digits are never replaced
    # words with a synonym in the tiny WordNet were replaced, with the capital kept
    assert any(c.startswith("Clash") for c in copies)
    assert any(w in c for c in copies for w in ("lector", "mistake", "flunks", "outstanding"))


def test_synonym_copies_are_seeded_and_independent_of_the_other_texts(synonym, wordnet):
    texts = [TEXT, "Crash: the file reader fails", "Great library, no error"]
    first = Augmentation(synonym, copies=2, seed=7)
    again = Augmentation(make_augmenter("synonym", nltk_data=wordnet), copies=2, seed=7)
    assert [first.copies_of(t) for t in texts] == [again.copies_of(t) for t in texts]
    assert [again.copies_of(t) for t in reversed(texts)] == [first.copies_of(t) for t in reversed(texts)]
    other = Augmentation(synonym, copies=2, seed=8)
    assert [first.copies_of(t) for t in texts] != [other.copies_of(t) for t in texts]


def test_a_copy_is_drawn_once_and_remembered():
    """Nested training slices hold the same issues: each (text, seed) is augmented once."""
    class Counting(Shout):
        calls = 0

        def _augment_lines(self, lines):
            Counting.calls += 1
            return super()._augment_lines(lines)

    augmenter = Counting()
    texts = [TEXT, "Crash: the file reader fails"]
    first = Augmentation(augmenter, copies=2, seed=1).apply(texts, [["bug"], ["bug"]])
    calls = Counting.calls
    assert Augmentation(augmenter, copies=2, seed=1).apply(texts[:1], [["bug"]])[0] == \
        first[0][:1] + [c for c in first[0][2:] if c in Augmentation(Shout(), copies=2, seed=1).copies_of(TEXT)]
    assert Counting.calls == calls  # nothing drawn again
    assert Augmentation(Counting(), copies=2, seed=1).apply(texts, [["bug"], ["bug"]]) == first  # as a fresh one


def test_seeding_leaves_the_global_generators_as_they_were(synonym):
    random.seed(3)
    np.random.seed(3)
    expected = (random.random(), np.random.random())
    random.seed(3)
    np.random.seed(3)
    Augmentation(synonym, copies=2, seed=0).copies_of(TEXT)
    assert (random.random(), np.random.random()) == expected


# -- WordNet setup -----------------------------------------------------------------------------
def test_setup_copies_the_files_and_writes_lexnames(tmp_path, nltk_path):
    source = write_wordnet_files(tmp_path / "src")
    installed = setup_wordnet(tmp_path / "nltk_data", source)
    assert installed == tmp_path / "nltk_data" / "corpora" / "wordnet"
    for name in WORDNET_FILES:
        assert not (installed / name).is_symlink()
    (source / "data.noun").write_text("changed")  # a copy, not a link: the source may change or go
    lexnames = (installed / "lexnames").read_text().splitlines()
    assert len(lexnames) == 45 and lexnames[3] == "03\tnoun.Tops\t1" and lexnames[-1] == "44\tadj.ppl\t3"
    reader, _ = load_wordnet(tmp_path / "nltk_data")
    assert {l.name() for s in reader.synsets("error") for l in s.lemmas()} == {"error", "mistake"}
    assert setup_wordnet(tmp_path / "nltk_data", write_wordnet_files(tmp_path / "src2")) == installed  # repeatable


def test_setup_from_debian_packages(tmp_path, nltk_path):
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    debs = tmp_path / "debs"
    debs.mkdir()
    for package, names in (("wordnet-base", [n for n in WORDNET_FILES if n != "index.sense"]),
                           ("wordnet-sense-index", ["index.sense"])):
        root = tmp_path / package
        files = write_wordnet_files(tmp_path / f"{package}-all")
        (root / "usr" / "share" / "wordnet").mkdir(parents=True)
        for name in names:
            shutil.copyfile(files / name, root / "usr" / "share" / "wordnet" / name)
        (root / "DEBIAN").mkdir()
        (root / "DEBIAN" / "control").write_text(f"Package: {package}\nVersion: 1:3.0-37\nArchitecture: all\n"
                                                 "Maintainer: test <t@example.com>\nDescription: test\n")
        subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(debs / f"{package}.deb")],
                       check=True, capture_output=True)
    installed = setup_wordnet(tmp_path / "nltk_data", debs)
    assert (installed / "index.sense").is_file() and (installed / "data.noun").stat().st_size > 0


def test_setup_and_loading_say_what_is_missing(tmp_path, nltk_path):
    source = write_wordnet_files(tmp_path / "src")
    (source / "index.sense").unlink()
    with pytest.raises(DataError, match="index.sense.*wordnet-sense-index"):
        setup_wordnet(tmp_path / "nltk_data", source)
    assert not (tmp_path / "nltk_data" / "corpora" / "wordnet").exists()
    with pytest.raises(DataError, match="augment-setup"):
        make_augmenter("synonym", nltk_data=tmp_path / "empty")


# -- contextual ------------------------------------------------------------------------------
def test_contextual_copies_are_seeded_and_keep_protected_spans(tiny_mlm):
    import torch

    augmenter = make_augmenter("contextual", model=tiny_mlm)
    assert Augmentation(augmenter).record()["model"] == str(tiny_mlm)
    torch_state = torch.get_rng_state()
    copies = Augmentation(augmenter, copies=2, seed=1).copies_of(TEXT)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert copies and all(c != TEXT for c in copies)
    for copy in copies:
        assert "\n".join(PROTECTED) in copy
        assert all(s in copy for s in ("`open_file(path)`", "@octocat", "https://example.com/crash/error."))
        assert len(copy.split("\n")) == len(TEXT.split("\n"))
    again = Augmentation(make_augmenter("contextual", model=tiny_mlm), copies=2, seed=1).copies_of(TEXT)
    assert again == copies


def test_contextual_refuses_a_model_without_an_mlm_head(tiny_bert):
    with pytest.raises(ModelNotAvailableError, match="no trained masked-LM head.*--augment-model"):
        make_augmenter("contextual", model=tiny_bert)
    with pytest.raises(ModelNotAvailableError, match="embedded all-MiniLM-L6-v2 has no trained masked-LM head"):
        make_augmenter("contextual")


def test_method_and_options_are_checked():
    with pytest.raises(ParameterError, match="unknown augmentation 'eda'"):
        make_augmenter("eda")
    with pytest.raises(ParameterError, match="for --augment contextual"):
        make_augmenter("synonym", model="/some/model")
    with pytest.raises(ParameterError, match="at least 1"):
        Augmentation(Shout(), copies=0)


# -- only training data ----------------------------------------------------------------------
def test_apply_appends_copies_with_labels_and_metadata(toy):
    texts, label_sets, _, _ = toy
    texts = texts[:3] + ["```\nall code\n```"]
    meta = [{"number": i} for i in range(4)]
    out, sets, out_meta = Augmentation(Shout(), copies=2, seed=0).apply(texts, label_sets[:4], meta)
    assert out[:4] == texts and sets[:4] == label_sets[:4] and out_meta[:4] == meta
    assert len(out) == 4 + 6  # two distinct copies of each text but the all-code one (none)
    for text, labels, record in zip(out[4:], sets[4:], out_meta[4:]):
        original = record["number"]
        assert text.lower() == texts[original].lower() and labels == label_sets[original]
        assert record["augmented"] in (1, 2)


def test_bundle_train_augments_training_texts_only_and_records_it(toy):
    texts, label_sets, labels, _ = toy
    valid = (texts[8:], label_sets[8:])
    shout = Shout()
    bundle = Bundle.train("naive_bayes", texts[:8], label_sets[:8], labels=labels, valid=valid,
                          unlabelled=["an unlabelled issue"], augment=Augmentation(shout, copies=2, seed=3))
    assert sorted(set(shout.seen)) == sorted(texts[:8])  # never a validation or unlabelled text
    record = bundle.manifest["augment"]
    assert {k: record[k] for k in ("method", "copies", "seed", "model")} == \
        {"method": "shout", "copies": 2, "seed": 3, "model": None}
    assert bundle.manifest["training"]["n"] == 8 + record["n_added"] and record["n_original"] == 8
    assert bundle.manifest["validation"]["n"] == 4
    with pytest.raises(ParameterError, match="auto needs validation data"):
        Bundle.train("auto", texts, label_sets, labels=labels, augment=Augmentation(shout))


def test_cli_train_augments_only_the_split_train_file(tmp_path, wordnet, monkeypatch):
    from labeler.augment import SynonymAugmenter

    run = CliRunner().invoke
    examples = Path(__file__).resolve().parents[2] / "labeler" / "examples"
    result = run(app, ["split", str(examples / "issues.jsonl"), "--label-map", str(examples / "labels.yml"),
                       "-o", str(tmp_path / "split")])
    assert result.exit_code == 0, result.output
    seen: list[str] = []
    original = SynonymAugmenter.augment_text
    monkeypatch.setattr(SynonymAugmenter, "augment_text",
                        lambda self, text, seed: seen.append(text) or original(self, text, seed))
    result = run(app, ["train", str(tmp_path / "split"), "-s", "naive_bayes", "-o", str(tmp_path / "bundle"),
                       "--augment", "synonym", "--augment-copies", "2"])
    assert result.exit_code == 0, result.output
    assert "synonym augmentation added" in result.output

    def texts(name):
        return {f"{r.get('title') or ''}\n\n{r.get('body') or ''}"
                for r in map(json.loads, (tmp_path / "split" / f"{name}.jsonl").read_text().splitlines())}

    assert set(seen) == texts("train") and not set(seen) & (texts("valid") | texts("test"))
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert {k: manifest["augment"][k] for k in ("method", "copies", "seed", "model")} == \
        {"method": "synonym", "copies": 2, "seed": 0, "model": None}


@pytest.mark.parametrize("args, message", [
    (["--augment-copies", "2"], "--augment-copies need(s) --augment"),
    (["--augment", "synonym", "--augment-model", "/m"], "for --augment contextual"),
    (["--augment", "synonym", "-s", "auto"], "auto needs validation data"),
])
def test_cli_augment_option_errors(args, message, tmp_path, wordnet):
    examples = Path(__file__).resolve().parents[2] / "labeler" / "examples"
    result = CliRunner().invoke(app, ["train", str(examples / "issues.jsonl"), "--label-map",
                                      str(examples / "labels.yml"), "-s", "naive_bayes", "-o", str(tmp_path / "b"),
                                      *args])
    assert result.exit_code == 2 and message in result.output
