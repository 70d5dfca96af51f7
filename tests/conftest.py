"""Shared fixtures: small hand-written issues, the real data folder (skipped when absent),
and tiny transformer models built on the fly (seconds, no hub)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# embeddings computed by tests go to a fresh directory, never the user's cache
os.environ["ISSUE_LABELER_CACHE"] = tempfile.mkdtemp(prefix="issue-labeler-test-cache-")

SHARED = Path(os.environ.get("ISSUE_LABELER_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))

TEXTS = [
    "Crash when loading a parquet file\n\nTraceback: segfault in reader",
    "Add streaming support for audio datasets\n\nIt would be great to stream",
    "Typo in the documentation of load_dataset\n\nThe docs say",
    "Error when calling map with num_proc\n\nraises an exception",
    "Feature request: support for zstd compression\n\nplease add",
    "Docs: the tutorial page has a broken link\n\nlink 404",
    "Bug: wrong number of rows after filter\n\nexpected 10 got 9",
    "New feature: push_to_hub for image datasets\n\nwould be nice",
    "Documentation for streaming is outdated\n\nthe guide mentions",
    "Exception in to_pandas with nested columns\n\nKeyError",
    "Enhancement: faster shuffling\n\nproposal to speed up",
    "Improve the README installation section\n\ndocs unclear",
]
LABEL_SETS = [["bug"], ["enhancement"], ["documentation"], ["bug"], ["enhancement"], ["documentation"],
              ["bug"], ["enhancement"], ["documentation", "enhancement"], ["bug"], ["enhancement"], ["documentation"]]
LABELS = ["bug", "enhancement", "documentation"]
DESCRIPTIONS = {"bug": "Something isn't working", "enhancement": "New feature or request",
                "documentation": "Improvements or additions to documentation"}


@pytest.fixture
def toy():
    """(texts, label_sets, labels, descriptions) of twelve hand-written issues."""
    return list(TEXTS), [list(s) for s in LABEL_SETS], list(LABELS), dict(DESCRIPTIONS)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that use it skip when it is absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (set ISSUE_LABELER_SHARED)")
    return path


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """../shared/fixtures beside the checkout; skipped when absent."""
    path = SHARED / "fixtures"
    if not path.is_dir():
        pytest.skip(f"fixtures folder {path} is absent (set ISSUE_LABELER_SHARED)")
    return path


def build_tiny_bert(directory: Path, texts: list[str], *, num_labels: int | None = None,
                    id2label: dict[int, str] | None = None, masked_lm: bool = False) -> Path:
    """A 2-layer BERT with a WordPiece tokenizer trained on ``texts``, saved to ``directory``
    (loads with AutoModel, AutoModelForSequenceClassification, AutoModelForMaskedLM and
    SentenceTransformer). With ``id2label`` the config carries those labels (for NLI:
    entailment/neutral/contradiction); with ``masked_lm`` the model is a BertForMaskedLM
    whose (random but saved) MLM head loads as a trained one would."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import (BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel,
                              PreTrainedTokenizerFast)

    directory.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts * 2, trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials))
    from tokenizers import decoders, processors

    tok.decoder = decoders.WordPiece()  # decode joins "##" pieces, as BERT's tokenizer does

    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_max_length=128)
    fast.save_pretrained(directory)
    kwargs = {}
    if id2label:
        kwargs = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}
    elif num_labels:
        kwargs = {"num_labels": num_labels}
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=160, **kwargs)
    # an encoder (like all-MiniLM-L6-v2) has no head; a classifier or a masked LM keeps its own
    model_cls = BertForMaskedLM if masked_lm else BertForSequenceClassification if kwargs else BertModel
    model_cls(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A tiny BERT encoder directory (built once per test session)."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), TEXTS)


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory) -> Path:
    """A tiny BertForMaskedLM directory (an MLM head included, as `issue-labeler adapt` writes)."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-mlm"), TEXTS, masked_lm=True)


@pytest.fixture(scope="session")
def tiny_nli(tmp_path_factory) -> Path:
    """A tiny sequence-classification model whose config has NLI labels."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-nli"), TEXTS,
                           id2label={0: "contradiction", 1: "neutral", 2: "entailment"})
