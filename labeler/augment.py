"""Training-data augmentation: seeded, altered copies of training issues (nlpaug).

Where it sits: load -> label map -> split -> **augment the training texts** -> fit -> decision
rule -> bundle. Only training texts are ever augmented: ``Bundle.train(..., augment=...)``
augments the ``texts`` it is given and nothing else (never ``valid``, never the unlabelled
pool), and ``issue-labeler train --augment METHOD`` on a split directory augments only its
train file. The copies carry their original's labels and metadata and are appended after
the originals.

Methods (``make_augmenter(method, ...)``):

- ``synonym``: nlpaug's ``SynonymAug`` with WordNet 3.0 synonyms. The WordNet files come from
  Debian's ``wordnet-base`` and ``wordnet-sense-index`` packages, copied into an NLTK data
  directory by :func:`setup_wordnet` (``issue-labeler augment-setup``); nltk's own downloader
  needs GitHub, which build machines cannot reach. nltk's POS tagger data is usually absent
  too: then every token is looked up under all parts of speech and English stop words
  (scikit-learn's list) are never replaced, since without tags nlpaug cannot skip
  determiners itself.
- ``contextual``: nlpaug's ``ContextualWordEmbsAug``: a word is masked and a BERT masked
  language model proposes the replacement, e.g. the domain-adapted encoder that
  ``issue-labeler adapt`` writes (any directory with a BertForMaskedLM and its tokenizer).
  The embedded all-MiniLM-L6-v2 has no MLM head: transformers would add a random one, whose
  "replacements" are noise, so a model without a trained head is refused. The output is
  what the model's tokenizer decodes (lower case for an uncased model), except the
  protected spans.

What is never changed: fenced code blocks, indented code, lines that look like stack traces
or log output (see ``_CODE_OR_LOG``) are left out of augmentation altogether; inside the other
(prose) lines inline code, URLs and @mentions are replaced by a placeholder before
augmenting and put back, character for character, afterwards. Line breaks, blank lines and
each line's indentation stay as they were; tokens with digits or underscores (versions,
identifiers) are never replaced.

Seeds: copy ``k`` of a text is drawn with a seed derived from (``seed``, ``k``, the text), so
the same seed gives identical copies, whatever else is in the data set or its order. The
global ``random``, numpy and torch generators nlpaug draws from are seeded for each copy and
restored afterwards. A copy identical to its original or to an earlier copy (an issue that
is all code, say) is dropped, so an issue may get fewer than ``copies`` copies.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import re
import shutil
import subprocess
import tempfile
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from labeler.errors import DataError, LabelerError, ModelNotAvailableError, ParameterError

log = logging.getLogger(__name__)

METHODS = ("synonym", "contextual")
#: share of a line's words an augmenter replaces (nlpaug's aug_p)
WORD_SHARE = 0.3
#: augment at least this many issues before a progress bar is shown
PROGRESS_MIN = 256

# -- what is protected ---------------------------------------------------------------------
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
#: lines left out of augmentation: indented code, stack-trace frames, log lines, prompts
_CODE_OR_LOG = re.compile("|".join([
    r"^(?: {4}|\t)",                                            # indented code
    r"^\s*Traceback \(most recent call last\)",                 # Python traceback
    r'^\s*File "[^"]*", line \d+',                              # Python frame
    r"^\s*at \S+(?: \(.*\))?\s*$",                              # Java / JavaScript frame
    r"^\s*(?:Caused by|Exception in thread)\b",
    r"^\s*[\w.$]*(?:Error|Exception|Warning)\b:",               # ValueError: ..., java.io.IOException: ...
    r"^\s*(?:panic:|goroutine \d+ \[|thread '.*' panicked)",    # Go, Rust
    r"^\s*\[?\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}",                 # timestamped log line
    r"^\s*\[?\d{2}:\d{2}:\d{2}\b",
    r"^\s*\[(?:TRACE|DEBUG|INFO|WARN|WARNING|ERROR|CRITICAL|FATAL)\]",
    r"^\s*(?:TRACE|DEBUG|INFO|WARN|WARNING|ERROR|CRITICAL|FATAL)(?::|\s+-\s)",
    r"^\s*(?:\$|>>>|\.\.\.|In \[\d+\]:|Out\[\d+\]:) ",          # shell and Python prompts
]))
#: spans inside a prose line that are masked: inline code, URLs, @mentions (@user, @org/team)
_INLINE = re.compile(r"(`+)[^`].*?\1"
                     r"|\b(?:https?|ftp)://\S+|\bwww\.\S+"
                     r"|(?<![\w@/.])@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:/[\w.-]+)?")
#: tokens never replaced: anything with a digit or an underscore (versions, identifiers)
_KEEP_TOKEN = r".*[\d_].*"


def prose_lines(lines: Sequence[str]) -> list[int]:
    """Indexes of the lines that may be augmented: not blank, not inside a fenced code block
    (an unclosed fence runs to the end), not indented code, a stack-trace frame or log output."""
    out: list[int] = []
    fence: str | None = None
    for i, line in enumerate(lines):
        if fence is not None:
            if re.match(rf" {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$", line):
                fence = None
            continue
        opening = _FENCE.match(line)
        if opening:
            fence = opening.group(1)
            continue
        if line.strip() and not _CODE_OR_LOG.search(line):
            out.append(i)
    return out


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted spans with the overlapping ones joined."""
    out: list[tuple[int, int]] = []
    for start, stop in sorted(spans):
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], stop))
        else:
            out.append((start, stop))
    return out


def _mask(line: str, spans: list[tuple[int, int]], placeholder: str) -> tuple[str, list[str]]:
    """``line`` with each span replaced by ``placeholder`` (set off by a space where the span
    touched other characters) and the spans' texts, in order."""
    parts, kept, end = [], [], 0
    for start, stop in spans:
        before = line[end:start]
        parts.append(before)
        left = " " if start > 0 and not line[start - 1].isspace() else ""
        right = " " if stop < len(line) and not line[stop].isspace() else ""
        parts.append(f"{left}{placeholder}{right}")
        kept.append(line[start:stop])
        end = stop
    parts.append(line[end:])
    return "".join(parts), kept


def _restore(augmented: str, kept: list[str], placeholder: str) -> str | None:
    """Put the kept spans back in order; None when the augmenter lost or added a placeholder."""
    pieces = augmented.split(placeholder)
    if len(pieces) != len(kept) + 1:
        return None
    out = [pieces[0]]
    for span, piece in zip(kept, pieces[1:]):
        out += [span, piece]
    return "".join(out)


# -- seeds -----------------------------------------------------------------------------------
def copy_seed(seed: int, copy: int, text: str) -> int:
    """The seed of copy ``copy`` (1, 2, ...) of ``text``: independent of the other texts."""
    digest = hashlib.sha256(f"{seed}\x00{copy}\x00".encode() + text.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "big")


@contextlib.contextmanager
def _seeded(seed: int, with_torch: bool) -> Iterator[None]:
    """Seed the generators nlpaug draws from (``random``, numpy's global one, and torch's when
    ``with_torch``) for the block, and give them back their previous state afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        if with_torch:
            import torch

            with torch.random.fork_rng():
                torch.manual_seed(seed)
                yield
        else:
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


# -- augmenters ------------------------------------------------------------------------------
class Augmenter(ABC):
    """One augmentation method: :meth:`augment_text` gives one altered version of a text."""

    #: the method's name (``synonym``, ``contextual``)
    name: str = ""
    #: stands for a protected span while a line is augmented; the augmenter must keep it
    placeholder: str = ""
    #: whether the method draws from torch's generator (seeded per copy only then)
    uses_torch: bool = False

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the augmenter besides its name (e.g. its model)."""
        return {}

    def protected_spans(self, line: str) -> list[tuple[int, int]]:
        """(start, end) of the spans of a prose line that must come back unchanged (they may
        overlap: overlapping spans are joined)."""
        return [m.span() for m in _INLINE.finditer(line)]

    @abstractmethod
    def _augment_lines(self, lines: list[str]) -> list[str]:
        """One altered version of each (masked, stripped) line, in order."""

    #: most copies :meth:`augment_text` remembers (a dict, not functools.lru_cache: that would
    #: hold every augmenter alive and share one bound across them)
    memo_size: int = 50_000

    def augment_text(self, text: str, seed: int) -> str:
        """One altered version of ``text`` drawn with ``seed``: prose lines augmented, the
        rest (and every protected span) exactly as it was. The same (text, seed) gives the same
        copy, so it is remembered: the benchmark's nested training slices and seeds share most
        of their issues, and a contextual copy costs seconds of masked-LM inference on a CPU."""
        memo = self.__dict__.setdefault("_memo", {})
        key = (seed, text)
        if key not in memo:
            if len(memo) >= self.memo_size:
                memo.clear()
            memo[key] = self._augment_text(text, seed)
        return memo[key]

    def _augment_text(self, text: str, seed: int) -> str:
        lines = text.split("\n")
        where = prose_lines(lines)
        if not where:
            return text
        masked, kept, edges = [], [], []
        for i in where:
            line = lines[i]
            core = line.strip()
            start = line.index(core)
            edges.append((line[:start], line[start + len(core):]))
            m, k = _mask(core, _merge(self.protected_spans(core)), self.placeholder)
            masked.append(m.strip())
            kept.append(k)
        with _seeded(seed, self.uses_torch):
            augmented = self._augment_lines(masked)
        for i, new, spans, (lead, trail), original in zip(where, augmented, kept, edges, masked):
            restored = _restore(new, spans, self.placeholder)
            if restored is None:  # the augmenter mangled a placeholder: keep this line as it was
                log.debug("augment: placeholder lost in %r; line kept", original)
                continue
            lines[i] = lead + restored + trail
        return "\n".join(lines)


class _KeepSpacing:
    """A tokenizer and its reverse for nlpaug's word augmenters that give back the line's own
    spacing and punctuation: nlpaug's default pair splits at every non-word character and
    joins with spaces ("version 2.14.0" came back as "version 2. 14. 0"). ``tokenize``
    remembers the text between the tokens for the ``join`` that follows it: nlpaug calls the
    two in turn on one line (substitution keeps the number of tokens)."""

    #: words (with inner dots, apostrophes, hyphens: 2.14.0, don't, built-in) or one other character
    TOKEN = re.compile(r"\w+(?:[.'’-]\w+)*|[^\w\s]")

    def __init__(self):
        self._gaps: list[str] = []

    def tokenize(self, text: str) -> list[str]:
        tokens, self._gaps, end = [], [], 0
        for m in self.TOKEN.finditer(text):
            self._gaps.append(text[end:m.start()])
            tokens.append(m.group())
            end = m.end()
        self._gaps.append(text[end:])
        return tokens

    def join(self, tokens: list[str]) -> str:
        if len(tokens) != len(self._gaps) - 1:
            raise RuntimeError("the tokens to join are not those of the last tokenized line")
        return "".join(gap + token for gap, token in zip(self._gaps, tokens)) + self._gaps[-1]


class SynonymAugmenter(Augmenter):
    """WordNet synonyms (nlpaug ``SynonymAug``) from the WordNet under ``nltk_data`` (default:
    nltk's search path, e.g. ``~/nltk_data`` or ``$NLTK_DATA``; see :func:`setup_wordnet`)."""

    name = "synonym"
    placeholder = "QQPROTECTEDSPANQQ"

    def __init__(self, nltk_data: str | Path | None = None):
        import nlpaug.augmenter.word as naw
        import nlpaug.model.word_dict as nmw
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        reader, self.wordnet_dir = load_wordnet(nltk_data)
        self.pos_tags = _nltk_tagger_available()

        class WordNetDictionary(nmw.WordNet):
            """nlpaug's WordNet with our reader: nlpaug's own reads ``nltk.corpus.wordnet``
            and, when that is missing, calls ``nltk.download`` (no network here); and with
            the POS fallback (nlpaug downloads the tagger when it is missing)."""

            def __init__(self, tagged: bool):
                nmw.WordDictionary.__init__(self, cache=True)
                self.lang, self.is_synonym, self.model, self.tagged = "eng", True, reader, tagged

            def pos_tag(self, tokens):
                if self.tagged:
                    import nltk

                    return nltk.pos_tag(tokens)
                return [(token, "") for token in tokens]  # no tag: nlpaug tries every POS

        dictionary = WordNetDictionary(self.pos_tags)

        class Synonyms(naw.SynonymAug):
            """SynonymAug on the dictionary above (its get_model would build nlpaug's own)."""

            def get_model(self, aug_src, lang, model_path, force_reload):  # noqa: ARG002 - nlpaug's signature
                return dictionary

        keep = "|".join([_KEEP_TOKEN, re.escape(self.placeholder), *map(re.escape, sorted(ENGLISH_STOP_WORDS))])
        spacing = _KeepSpacing()
        self._aug = Synonyms(aug_p=WORD_SHARE, stopwords_regex=f"(?i)^(?:{keep})$",
                             tokenizer=spacing.tokenize, reverse_tokenizer=spacing.join)

    def describe(self) -> dict[str, Any]:
        return {"wordnet": str(self.wordnet_dir), "pos_tags": self.pos_tags}

    def _augment_lines(self, lines: list[str]) -> list[str]:
        return list(self._aug.augment(lines))


class ContextualAugmenter(Augmenter):
    """Masked-LM substitution (nlpaug ``ContextualWordEmbsAug``) with the BERT masked language
    model in directory (or hub id) ``model``; ``None`` names the embedded encoder, which has
    no MLM head and is therefore refused. ``device``: as :func:`labeler.hf.pick_device`."""

    name = "contextual"
    uses_torch = True

    def __init__(self, model: str | Path | None = None, device: str | None = "auto", top_k: int = 100):
        import nlpaug.augmenter.word as naw

        from labeler.hf import pick_device

        self.model = _load_masked_lm(model, pick_device(device), top_k)
        lm = self.model
        self.placeholder = lm.tokenizer.unk_token
        specials = set(lm.tokenizer.all_special_tokens)

        class Contextual(naw.ContextualWordEmbsAug):
            """ContextualWordEmbsAug on the adapter below (its get_model would build nlpaug's
            own BERT wrapper), never replacing a special token: the placeholder is the
            unknown token."""

            def get_model(self, *args, **kwargs):  # noqa: ARG002 - nlpaug's signature
                return lm

            def is_stop_words(self, token):
                return token in specials

        self._aug = Contextual(model_path=lm.model_path, model_type="bert", aug_p=WORD_SHARE,
                               stopwords_regex=f"^{_KEEP_TOKEN}", device=lm.device)

    def describe(self) -> dict[str, Any]:
        return {"model": self.model.model_path}

    def protected_spans(self, line: str) -> list[tuple[int, int]]:
        """Inline code, URLs, mentions, and also whatever the model's tokenizer turns into a
        special token: the unknown token (characters or words it cannot spell; the unknown
        token is the placeholder here) or a literal "[MASK]" (it would confuse nlpaug)."""
        tok = self.model.tokenizer
        special = set(tok.all_special_ids)
        encoded = tok(line, add_special_tokens=False, return_offsets_mapping=True)
        return super().protected_spans(line) + [
            (int(a), int(b)) for i, (a, b) in zip(encoded["input_ids"], encoded["offset_mapping"]) if i in special]

    def _augment_lines(self, lines: list[str]) -> list[str]:
        return list(self._aug.augment(lines))


def _load_masked_lm(model: str | Path | None, device: str, top_k: int):
    """nlpaug's BERT wrapper around a masked LM that has a trained head."""
    import nlpaug.model.lang_models as nml
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from labeler.hf import DEFAULT_ENCODER, quiet_transformers, resolve_model

    path = resolve_model(model)
    given = f"{model}" if model is not None else f"the embedded {DEFAULT_ENCODER}"

    class MaskedLM(nml.Bert):
        """nlpaug 1.1.11's Bert, loading through transformers 5. nlpaug predates it: it looks
        tokens up with the slow tokenizers' ``_convert_token_to_id``/``_convert_id_to_token``
        unless the class name says "TokenizerFast", and transformers 5 tokenizers are fast
        ones named ``BertTokenizer`` without those methods. This subclass uses the public
        ``convert_tokens_to_ids``/``convert_ids_to_tokens``, loads the model itself to refuse
        one whose MLM head would be freshly initialised, sets ``model_type`` (nlpaug leaves
        it empty, so it would not know its unknown token) and never proposes a special token."""

        def __init__(self):
            nml.LanguageModels.__init__(self, device, model_type="bert", top_k=top_k, top_p=None, silence=True)
            self.model_path = path
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            if self.tokenizer.mask_token != self.MASK_TOKEN or self.tokenizer.unk_token != self.UNKNOWN_TOKEN:
                raise ParameterError(f"contextual augmentation needs a BERT-style masked LM ([MASK], [UNK]); "
                                     f"{given} uses {self.tokenizer.mask_token} and {self.tokenizer.unk_token}")
            with quiet_transformers():
                self.model, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
            missing = sorted(info.get("missing_keys") or [])
            if missing:
                raise ModelNotAvailableError(
                    f"{given} has no trained masked-LM head ({', '.join(missing[:3])}"
                    f"{', ...' if len(missing) > 3 else ''} missing): transformers would add a random one and "
                    "the replacements would be noise. Give --augment-model a directory with a BertForMaskedLM, "
                    "e.g. one written by `issue-labeler adapt`")
            self.mask_id = self.token2id(self.MASK_TOKEN)
            self.pad_id = self.token2id(self.PAD_TOKEN)
            self.model.to(self.device)
            self.model.eval()

        def token2id(self, token):
            return self.tokenizer.convert_tokens_to_ids(token)

        def id2token(self, _id):
            return self.tokenizer.convert_ids_to_tokens(_id)

        def is_skip_candidate(self, candidate):
            return super().is_skip_candidate(candidate) or candidate in self.tokenizer.all_special_tokens

    return MaskedLM()


def make_augmenter(method: str, *, model: str | Path | None = None, nltk_data: str | Path | None = None) -> Augmenter:
    """The augmenter of ``method`` (``synonym`` or ``contextual``), loaded and checked: a
    missing WordNet or a model without an MLM head fails here, before any training.
    ``model`` is for ``contextual`` only, ``nltk_data`` for ``synonym`` only."""
    if method not in METHODS:
        raise ParameterError(f"unknown augmentation {method!r}: choose {' or '.join(METHODS)}")
    if method == "synonym":
        if model is not None:
            raise ParameterError("an augmentation model is for --augment contextual; synonym uses WordNet")
        return SynonymAugmenter(nltk_data)
    if nltk_data is not None:
        raise ParameterError("nltk_data (WordNet) is for synonym augmentation, not contextual")
    return ContextualAugmenter(model)


@dataclass
class Augmentation:
    """``copies`` altered copies of every training text with ``augmenter``, drawn with ``seed``
    (see the module notes). Give it to ``Bundle.train(augment=...)``."""

    augmenter: Augmenter
    copies: int = 1
    seed: int = 0

    def __post_init__(self):
        if int(self.copies) < 1:
            raise ParameterError(f"augmentation copies must be at least 1, got {self.copies}")

    def record(self) -> dict[str, Any]:
        """What the bundle manifest says about the augmentation: method, copies, seed, model
        (contextual: the model directory; synonym: None) and the augmenter's details."""
        details = self.augmenter.describe()
        return {"method": self.augmenter.name, "copies": int(self.copies), "seed": int(self.seed),
                "model": details.get("model"), **{k: v for k, v in details.items() if k != "model"}}

    def copies_of(self, text: str) -> list[str]:
        """The distinct altered copies of one text (at most ``copies``; none equal to ``text``)."""
        out: list[str] = []
        for k in range(1, int(self.copies) + 1):
            new = self.augmenter.augment_text(text, copy_seed(int(self.seed), k, text))
            if new != text and new not in out:
                out.append(new)
        return out

    def apply(self, texts: Sequence[str], label_sets: Sequence[Sequence[str]],
              metadata: Sequence[dict] | None = None, *, progress: bool | None = None,
              ) -> tuple[list[str], list[list[str]], list[dict] | None]:
        """The texts, label sets and metadata followed by the copies (each with its original's
        labels, and its metadata plus ``"augmented": k``). ``progress``: a tqdm bar; None shows
        one from :data:`PROGRESS_MIN` texts on."""
        from tqdm.auto import tqdm

        if len(label_sets) != len(texts) or (metadata is not None and len(metadata) != len(texts)):
            raise ValueError("texts, label sets and metadata must have the same length")
        out_texts, out_sets = list(texts), [list(s) for s in label_sets]
        out_meta = [dict(m) for m in metadata] if metadata is not None else None
        show = progress if progress is not None else len(texts) >= PROGRESS_MIN
        for i, text in enumerate(tqdm(texts, desc=f"augmenting ({self.augmenter.name})", unit="issue",
                                      disable=not show)):
            for k, new in enumerate(self.copies_of(text), start=1):
                out_texts.append(new)
                out_sets.append(list(label_sets[i]))
                if out_meta is not None:
                    out_meta.append({**metadata[i], "augmented": k})
        return out_texts, out_sets, out_meta


def check_strategy(strategy: str, has_valid: bool) -> None:
    """``auto`` without validation data holds out part of its training texts for choosing
    and tuning; with augmentation those would include copies of issues it trains on."""
    if strategy == "auto" and not has_valid:
        raise ParameterError("augmentation with --strategy auto needs validation data (--valid, or a split "
                             "directory with a valid file): auto's own hold-out would hold out augmented "
                             "copies of issues it trains on")


# -- WordNet ---------------------------------------------------------------------------------
#: the Debian packages holding WordNet 3.0 (the sense index is a package of its own)
WORDNET_PACKAGES = ("wordnet-base", "wordnet-sense-index")
#: the files nltk's WordNetCorpusReader reads, besides lexnames (written from LEXNAMES)
WORDNET_FILES = tuple(f"{kind}.{pos}" for kind in ("index", "data") for pos in ("noun", "verb", "adj", "adv")) \
    + tuple(f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")) + ("cntlist.rev", "index.sense")
#: WordNet 3.0's lexicographer files, in number order (the ``lexnames`` file nltk reads;
#: Debian does not ship it, its names are in the lexnames(5WN) manual page)
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_SYNTACTIC_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def default_nltk_data() -> Path:
    """``~/nltk_data``: the first directory nltk searches (after ``$NLTK_DATA``)."""
    return Path.home() / "nltk_data"


def write_lexnames(directory: Path) -> Path:
    path = Path(directory) / "lexnames"
    path.write_text("".join(f"{i:02d}\t{name}\t{_SYNTACTIC_CATEGORY[name.split('.')[0]]}\n"
                            for i, name in enumerate(LEXNAMES)))
    return path


def _unpack_debs(debs: Sequence[Path], into: Path) -> Path:
    """Unpack Debian packages with ``dpkg-deb -x``; the directory holding their WordNet files."""
    if shutil.which("dpkg-deb") is None:
        raise LabelerError("dpkg-deb is needed to unpack the WordNet packages; unpack them yourself and "
                           "pass the directory holding data.noun etc. with --from")
    for deb in debs:
        result = subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], capture_output=True, text=True)
        if result.returncode != 0:
            raise DataError(f"cannot unpack {deb}: {(result.stderr.strip().splitlines() or ['dpkg-deb failed'])[-1]}")
    return into / "usr" / "share" / "wordnet"


def _download_debs(into: Path) -> list[Path]:
    """``apt-get download`` the WordNet packages into ``into`` (no root needed)."""
    if shutil.which("apt-get") is None:
        raise LabelerError("no WordNet files found and no apt-get to download them: get Debian's "
                           f"{' and '.join(WORDNET_PACKAGES)} packages (or WordNet 3.0's dict files) "
                           "and pass them with --from")
    result = subprocess.run(["apt-get", "download", *WORDNET_PACKAGES], cwd=into, capture_output=True, text=True)
    debs = sorted(into.glob("*.deb"))
    if result.returncode != 0 or len(debs) < len(WORDNET_PACKAGES):
        raise LabelerError(f"`apt-get download {' '.join(WORDNET_PACKAGES)}` failed: "
                           f"{(result.stderr.strip().splitlines() or ['no package downloaded'])[-1]}")
    return debs


def setup_wordnet(target: str | Path | None = None, source: str | Path | None = None) -> Path:
    """Copy WordNet 3.0 into ``target/corpora/wordnet`` (default target: ``~/nltk_data``), in
    the layout nltk's WordNet reader expects, with the ``lexnames`` file it needs; return that
    directory. Repeatable: an earlier copy is replaced once the new one is complete.

    ``source``: a directory holding the WordNet database files (``data.noun``, ``index.sense``
    ...; e.g. ``/usr/share/wordnet`` after ``apt-get install wordnet-base
    wordnet-sense-index``), or a directory holding those two packages' ``.deb`` files. None:
    ``/usr/share/wordnet`` when it is complete, else both packages are fetched with ``apt-get
    download`` (no root needed) and unpacked with ``dpkg-deb``. Files are copied, not linked,
    so the NLTK directory stays valid when the packages go away."""
    target = Path(target).expanduser() if target is not None else default_nltk_data()
    with tempfile.TemporaryDirectory(prefix="wordnet-") as tmp:
        work = Path(tmp)
        if source is None:
            system = Path("/usr/share/wordnet")
            files = system if all((system / f).is_file() for f in WORDNET_FILES) else \
                _unpack_debs(_download_debs(work), work / "unpacked")
        else:
            source = Path(source).expanduser()
            if not source.is_dir():
                raise DataError(f"{source} is not a directory (give WordNet's dict files or the .deb packages)")
            debs = sorted(source.glob("*.deb"))
            files = _unpack_debs(debs, work / "unpacked") if debs else source
        absent = [f for f in WORDNET_FILES if not (files / f).is_file()]
        if absent:
            raise DataError(f"{source or files}: WordNet files missing: {', '.join(absent)} (Debian ships "
                            f"index.sense in wordnet-sense-index, the rest in wordnet-base)")
        final = target / "corpora" / "wordnet"
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=final.parent))
        try:
            for name in WORDNET_FILES:
                shutil.copyfile(files / name, staging / name)
            write_lexnames(staging)
            if final.exists():
                shutil.rmtree(final)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    try:
        load_wordnet(target)  # an unreadable copy fails here, not when training
    except DataError:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return final


def load_wordnet(nltk_data: str | Path | None = None):
    """(nltk's WordNetCorpusReader, its directory) for ``nltk_data/corpora/wordnet``, or the
    first WordNet on nltk's search path (``$NLTK_DATA``, ``~/nltk_data``, ...) when
    ``nltk_data`` is None. A given ``nltk_data`` goes to the front of ``nltk.data.path``: nltk
    reads only files under the directories listed there, and its reader looks up the WordNet
    named "wordnet" on that path while loading."""
    try:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader, WordNetError
    except ImportError:  # pragma: no cover - a normal dependency
        raise LabelerError("synonym augmentation needs nltk (pip install nltk)") from None
    missing = ("run `issue-labeler augment-setup` (and set NLTK_DATA if you install it elsewhere "
               "than ~/nltk_data)")
    if nltk_data is not None:
        root = str(Path(nltk_data).expanduser().resolve())
        if root in nltk.data.path:
            nltk.data.path.remove(root)
        nltk.data.path.insert(0, root)
        directory = Path(root) / "corpora" / "wordnet"
        if not directory.is_dir():
            raise DataError(f"WordNet is not installed in {nltk_data}: {missing}")
    else:
        try:
            directory = Path(str(nltk.data.find("corpora/wordnet")))
        except LookupError:
            raise DataError(f"WordNet is not installed in nltk's data path ({', '.join(map(str, nltk.data.path[:3]))}"
                            f", ...): {missing}") from None
    try:
        with warnings.catch_warnings():  # "multilingual functions are not available": English only here
            warnings.simplefilter("ignore")
            return WordNetCorpusReader(str(directory), None), directory
    except (OSError, ValueError, AssertionError, WordNetError) as exc:
        raise DataError(f"WordNet at {directory} is unreadable ({type(exc).__name__}: {exc}); "
                        "run `issue-labeler augment-setup` again") from None


def _nltk_tagger_available() -> bool:
    import nltk

    try:
        nltk.pos_tag(["test"])
    except LookupError:
        return False
    return True


__all__ = ["Augmentation", "Augmenter", "ContextualAugmenter", "LEXNAMES", "METHODS", "SynonymAugmenter",
           "WORDNET_FILES", "check_strategy", "copy_seed", "default_nltk_data", "load_wordnet",
           "make_augmenter", "prose_lines", "setup_wordnet", "write_lexnames"]
