"""Domain adaptation: masked-LM training of an encoder on a repository's issue texts.

The encoder strategies (``finetune``, ``setfit``, ``knn``, ``zero_shot``, ``linear`` with
embedding features) start from a general-purpose encoder, the embedded all-MiniLM-L6-v2 by
default. Chapter 9 of *NLP with Transformers* first continues that encoder's pre-training as
a masked language model on the repository's own issues, labelled and unlabelled alike, so
it learns the project's vocabulary (API names, error messages) before any label is used.
This module does that; ``issue-labeler adapt`` is its command line.

* :func:`gather_texts` reads issue files (any format ``train`` reads) into the texts to train
  on, with the same text function as training (:func:`labeler.data.issue_text`), every row
  whether it has labels or not, duplicates once, and the evaluation issues left out: the
  issues of ``exclude`` files, and of a split directory's valid and test files
  (:func:`evaluation_files`), matched by GitHub issue id or by text. An encoder adapted on
  the test issues would make every later score on them optimistic.
* :func:`adapt` trains: ``AutoModelForMaskedLM`` of the source model (MiniLM has no MLM head,
  so it gets a fresh one, said in the report), ``DataCollatorForLanguageModeling`` masking
  ``mlm_probability`` (15%) of the tokens, the transformers ``Trainer``. A fraction of the
  texts (``heldout``) is kept out of training, and the masked-LM loss and perplexity on them
  are measured before and after, on the very same masked tokens (one seeded masking). Issues
  are truncated to ``max_length`` tokens, as the strategies read them.
* Time and resuming: ``budget`` seconds of wall clock stop training cleanly after the step in
  progress (a ``TrainerCallback``) and checkpoint it; checkpoints are also written every
  ``save_steps`` steps to ``OUTPUT/checkpoints`` (the last one kept, with optimiser,
  scheduler and random states), and ``resume=True`` continues from the last one: with more
  ``epochs`` than before it trains on. A resumed run must use the same texts, model and
  training options as the run that wrote the checkpoint (checked against
  ``checkpoints/adapt-run.json``); ``epochs``, ``budget`` and ``save_steps`` may change.
* Output: ``OUTPUT`` holds the masked-LM model (``save_pretrained``, safetensors) and its
  tokenizer, which ``AutoModel``, ``AutoModelForSequenceClassification``,
  ``AutoModelForMaskedLM`` and ``SentenceTransformer`` load (the latter with mean pooling, as
  for any plain transformers directory), so it is ``-p model=OUTPUT`` for every encoder
  strategy; and ``adapt.json``, the report (:func:`adapt`'s return value). Loading it as an
  encoder logs that the MLM head's weights are unused and that BERT's pooler is new (a
  masked-LM model has none): expected, and only ``finetune -p pooling=cls`` reads the pooler.

torch and transformers are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import pydantic
from pydantic import ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt, field_validator

from labeler.data import LoadOptions, read_issues
from labeler.errors import DataError, LabelerError, ParameterError
from labeler.hf import (
    make_budget_callback,
    pick_device,
    position_limit,
    quiet_transformers,
    resolve_model,
    save_safetensors,
    truncate_chars,
)
from labeler.splits import part_size

#: the report written beside the model
REPORT_FILE = "adapt.json"
#: the checkpoints folder inside the output directory
CHECKPOINTS = "checkpoints"
#: what a run that wrote checkpoints was made with, checked on --resume
RUN_FILE = "adapt-run.json"
#: options a resumed run must share with the run that wrote the checkpoint
_RESUME_KEYS = ("model", "max_length", "batch_size", "learning_rate", "mlm_probability", "heldout", "seed")


class AdaptParams(pydantic.BaseModel):
    """The options of :func:`adapt` (``issue-labeler adapt`` flags of the same names)."""

    model_config = ConfigDict(extra="forbid")

    model: Optional[str] = Field("default", description="encoder to adapt: hub id or directory; default = embedded "
                                                        "all-MiniLM-L6-v2 (gets a fresh MLM head)")
    epochs: PositiveInt = Field(3, description="passes over the training texts")
    max_length: PositiveInt = Field(128, description="tokens per issue (longer issues are truncated, as the "
                                                     "strategies read them)")
    batch_size: PositiveInt = Field(16, description="texts per optimiser step")
    learning_rate: PositiveFloat = Field(5e-5, description="AdamW peak learning rate, linear decay")
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="share of the tokens masked")
    heldout: float = Field(0.1, ge=0, description="texts kept out of training for the perplexity report: a fraction "
                                                  "(below 1) or a count; 0: no report")
    budget: Optional[NonNegativeFloat] = Field(None, description="wall-clock seconds of training (None: no limit); "
                                                                 "the step in progress ends, is saved and can be resumed")
    save_steps: PositiveInt = Field(200, description="checkpoint every this many optimiser steps")
    seed: int = Field(0, description="seeds the held-out split, the new head, the masking and the data order")
    device: str = Field("auto", description="auto (cuda when available), cpu, cuda, cuda:1")

    @field_validator("heldout")
    @classmethod
    def _fraction_or_count(cls, value: float) -> float:
        part_size(value, 1, "heldout")  # a fraction below 1 or a whole count
        return value


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` validated through :class:`AdaptParams`, every default filled in; one
    :class:`~labeler.errors.ParameterError` line for an unknown key or a bad value."""
    from labeler.strategies.base import _one_line

    try:
        return AdaptParams.model_validate(dict(params)).model_dump(mode="json")
    except pydantic.ValidationError as exc:
        raise ParameterError(_one_line("adapt", AdaptParams, exc)) from None


# -- the texts ------------------------------------------------------------------------------
@dataclass
class Corpus:
    """The texts to adapt on, and what became of the records read."""

    texts: list[str]
    #: records read from the input files
    read: int = 0
    #: records whose text an earlier record already had
    duplicates: int = 0
    #: pull requests dropped (``include_pull_requests=False``)
    pull_requests: int = 0
    #: records left out because they are evaluation issues (same id or same text)
    excluded: int = 0
    sources: list[str] = field(default_factory=list)
    excluded_from: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-able counts and file names (without the texts), for the report."""
        out = asdict(self)
        out["texts"] = len(self.texts)
        return out


def evaluation_files(split_dir: str | Path) -> list[Path]:
    """The valid and test files of a directory written by ``issue-labeler split`` (named in its
    split.json, else ``valid``/``test`` ``.jsonl``/``.csv``). :class:`DataError` when it has
    neither."""
    directory = Path(split_dir)
    files: dict[str, str] = {}
    if (directory / "split.json").is_file():
        try:
            files = json.loads((directory / "split.json").read_text()).get("files") or {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{directory}/split.json is not valid JSON ({exc})") from None
    found = []
    for name in ("valid", "test"):
        for candidate in ([files[name]] if name in files else []) + [f"{name}.jsonl", f"{name}.csv"]:
            if (directory / candidate).is_file():
                found.append(directory / candidate)
                break
    if not found:
        raise DataError(f"{directory} has no valid or test file (a directory written by `issue-labeler split`?)")
    return found


#: an input of :func:`gather_texts`: a file, or a file and how to read it
Source = Union[str, Path, tuple[Union[str, Path], LoadOptions]]


def _source(item: Source) -> tuple[Path, LoadOptions]:
    if isinstance(item, tuple):
        return Path(item[0]), item[1]
    return Path(item), LoadOptions()


def gather_texts(inputs: Sequence[Source], exclude: Sequence[Source] = ()) -> Corpus:
    """The issue texts of ``inputs`` minus the issues of ``exclude``.

    Each item of ``inputs`` and ``exclude`` is a file path (read with default options) or a
    ``(path, LoadOptions)`` pair; every record counts, labelled or not (no label column is
    needed). A record is excluded when its GitHub ``id`` is the id of an excluded issue or
    its text (title + blank line + body) is the text of one; a text met twice is kept once;
    pull requests are dropped when the options say so. Raises :class:`DataError` when no text
    is left."""
    bad_ids: set[str] = set()
    bad_texts: set[str] = set()
    corpus = Corpus(texts=[])
    for item in exclude:
        path, opts = _source(item)
        for issue in read_issues(path, opts):
            bad_texts.add(issue.text)
            if issue.id is not None:
                bad_ids.add(str(issue.id))
        corpus.excluded_from.append(str(path))
    seen: set[str] = set()
    for item in inputs:
        path, opts = _source(item)
        corpus.sources.append(str(path))
        for issue in read_issues(path, opts):
            corpus.read += 1
            text = issue.text
            if text in bad_texts or (issue.id is not None and str(issue.id) in bad_ids):
                corpus.excluded += 1
            elif issue.is_pull_request and not opts.include_pull_requests:
                corpus.pull_requests += 1
            elif text in seen:
                corpus.duplicates += 1
            else:
                seen.add(text)
                corpus.texts.append(text)
    if not corpus.texts:
        raise DataError(f"no issue text left to adapt on ({corpus.read} read, {corpus.excluded} excluded as "
                        f"evaluation issues, {corpus.duplicates} duplicates, {corpus.pull_requests} pull requests)")
    return corpus


# -- masked-LM loss on held-out texts ------------------------------------------------------------
def _tokenize(tokenizer, texts: Sequence[str], max_length: int) -> list[dict[str, Any]]:
    enc = tokenizer([truncate_chars(t, max_length) for t in texts], truncation=True, max_length=max_length,
                    return_special_tokens_mask=True)
    return [{key: enc[key][i] for key in enc.keys()} for i in range(len(texts))]


def masked_batches(tokenizer, texts: Sequence[str], *, max_length: int, batch_size: int,
                   mlm_probability: float, seed: int) -> list[dict[str, Any]]:
    """``texts`` tokenized and masked once, with a seeded generator, in batches: the fixed
    test that :func:`masked_lm_loss` scores a model on before and after training."""
    from transformers import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability, seed=seed)
    rows = _tokenize(tokenizer, texts, max_length)
    return [collator(rows[start:start + batch_size]) for start in range(0, len(rows), batch_size)]


def masked_lm_loss(model, batches: Sequence[dict[str, Any]], *, progress: bool = False) -> dict[str, Any]:
    """Mean cross-entropy of ``model`` over every masked token of ``batches`` (not a mean of
    batch means) and its perplexity ``exp(loss)``; ``None`` for both when nothing was masked
    (texts too short)."""
    import torch
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for batch in tqdm(batches, desc="held-out masked-LM loss", unit="batch", disable=not progress):
            n = int((batch["labels"] != -100).sum())
            if n == 0:
                continue
            out = model(**{k: v.to(device) for k, v in batch.items()})
            total += float(out.loss) * n
            count += n
    model.train(was_training)
    if count == 0:
        return {"loss": None, "perplexity": None, "masked_tokens": 0}
    loss = total / count
    return {"loss": round(loss, 4), "perplexity": round(math.exp(min(loss, 700.0)), 3), "masked_tokens": count}


# -- training -----------------------------------------------------------------------------------
def _fingerprint(train: Sequence[str], heldout: Sequence[str]) -> str:
    h = hashlib.sha256()
    for part in (train, heldout):
        for text in part:
            h.update(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
        h.update(b"\0")
    return h.hexdigest()


def _check_resume(checkpoints: Path, run: dict[str, Any], resume: bool) -> str | None:
    """The checkpoint to resume from (None: start afresh); a clear error when ``resume`` has
    nothing to continue, or continues another run, or when a fresh start would mix with an
    earlier run's checkpoints."""
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if not resume:
        if last is not None:
            raise LabelerError(f"{checkpoints} holds a checkpoint of an earlier run ({Path(last).name}): pass "
                               "--resume to continue it, or remove the folder (or choose another output) to start afresh")
        return None
    if last is None:
        raise LabelerError(f"nothing to resume: no checkpoint in {checkpoints}")
    try:
        earlier = json.loads((checkpoints / RUN_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        raise LabelerError(f"cannot resume: {checkpoints / RUN_FILE} (what the checkpoint was made with) "
                           "is missing or unreadable") from None
    changed = [k for k in (*_RESUME_KEYS, "texts") if earlier.get(k) != run.get(k)]
    if changed:
        raise LabelerError(f"cannot resume {Path(last).name}: it was made with other "
                           + ", ".join(f"{k} ({earlier.get(k)!r})" if k != "texts" else "texts" for k in changed)
                           + "; give the same inputs and options (only --epochs, --budget and --save-steps may change)")
    return last


def adapt(texts: Sequence[str], output_dir: str | Path, *, resume: bool = False, progress: bool = False,
          data: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
    """Masked-LM training of ``params["model"]`` on ``texts``, saved to ``output_dir``.

    ``params`` are :class:`AdaptParams` fields (checked first: a bad one is a
    :class:`~labeler.errors.ParameterError` before anything loads). ``resume`` continues from
    the last checkpoint in ``output_dir/checkpoints``; ``progress`` shows the Trainer's
    progress bar and per-epoch loss. ``data`` (e.g. :meth:`Corpus.summary`) is recorded in the
    report as it is. Returns the report, also written to ``output_dir/adapt.json``: ``before``
    and ``after`` (held-out masked-LM ``loss``, ``perplexity``, ``masked_tokens``), ``texts``
    (``train``, ``heldout``), ``steps`` (all runs), ``steps_this_run``, ``resumed_from``,
    ``stopped_by_budget``, ``new_mlm_head``, ``device``, ``seconds``, ``params``, ``data``."""
    p = check_params(params)
    texts = list(texts)
    if not texts:
        raise DataError("no texts to adapt on")
    started = time.perf_counter()
    out = Path(output_dir)
    checkpoints = out / CHECKPOINTS

    # the held-out texts: a seeded shuffle, at least one when a fraction is asked for
    order = list(range(len(texts)))
    random.Random(p["seed"]).shuffle(order)
    n_held = part_size(p["heldout"], len(texts), "heldout")
    if p["heldout"] and n_held == 0 and len(texts) > 1:
        n_held = 1
    if n_held >= len(texts):
        raise ParameterError(f"adapt: heldout {p['heldout']} leaves no training text out of {len(texts)}")
    heldout = [texts[i] for i in order[:n_held]]
    train = [texts[i] for i in sorted(order[n_held:])]
    run = {**{k: p[k] for k in _RESUME_KEYS}, "texts": _fingerprint(train, heldout)}
    resume_from = _check_resume(checkpoints, run, resume)
    source = resolve_model(p["model"])

    from transformers import (AutoModelForMaskedLM, AutoTokenizer, DataCollatorForLanguageModeling,
                              PrinterCallback, Trainer, TrainingArguments, set_seed)

    device = pick_device(p["device"])
    with quiet_transformers():  # the load report of a fresh head is said in our own words below
        set_seed(int(p["seed"]))  # the new head's initialisation is reproducible
        tokenizer = AutoTokenizer.from_pretrained(source)
        if tokenizer.mask_token is None:
            raise LabelerError(f"the tokenizer of {p['model']} has no mask token: it cannot be trained as a masked LM")
        model, info = AutoModelForMaskedLM.from_pretrained(source, output_loading_info=True)
    new_head = any(key.startswith(("cls.", "lm_head", "vocab_")) for key in info.get("missing_keys", ()))
    limit = position_limit(model.config)
    max_length = min(int(p["max_length"]), limit or int(p["max_length"]))
    model.to(device)

    test = masked_batches(tokenizer, heldout, max_length=max_length, batch_size=int(p["batch_size"]),
                          mlm_probability=float(p["mlm_probability"]), seed=int(p["seed"])) if heldout else []
    before = masked_lm_loss(model, test, progress=progress) if test else None

    checkpoints.mkdir(parents=True, exist_ok=True)
    (checkpoints / RUN_FILE).write_text(json.dumps(run, indent=2))
    budget = make_budget_callback(p["budget"], save_on_stop=True)
    args = TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=float(p["epochs"]),
        learning_rate=float(p["learning_rate"]),
        per_device_train_batch_size=int(p["batch_size"]),
        save_strategy="steps",
        save_steps=int(p["save_steps"]),
        save_total_limit=1,
        eval_strategy="no",
        logging_strategy="epoch" if progress else "no",
        disable_tqdm=not progress,
        report_to="none",
        seed=int(p["seed"]),
        data_seed=int(p["seed"]),
        use_cpu=device == "cpu",
        dataloader_pin_memory=device != "cpu",
    )
    with quiet_transformers():  # info logs and save/load bars; the Trainer's own bar follows disable_tqdm
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=_tokenize(tokenizer, train, max_length),
            data_collator=DataCollatorForLanguageModeling(tokenizer, mlm_probability=float(p["mlm_probability"])),
            processing_class=tokenizer,
            callbacks=[budget],
        )
        if not progress:  # with disable_tqdm the Trainer prints every log dict instead
            trainer.remove_callback(PrinterCallback)
        first_step = _checkpoint_step(resume_from)
        trainer.train(resume_from_checkpoint=resume_from)
        model = trainer.model
        steps = int(trainer.state.global_step)
        save_safetensors(model, out)
        tokenizer.save_pretrained(str(out))
        del trainer
    after = masked_lm_loss(model, test, progress=progress) if test else None

    report = {
        "model": p["model"],
        "source": source,
        "new_mlm_head": new_head,
        "device": device,
        "max_length": max_length,
        "texts": {"train": len(train), "heldout": len(heldout)},
        "before": before,
        "after": after,
        "steps": steps,
        "steps_this_run": steps - first_step,
        "resumed_from": Path(resume_from).name if resume_from else None,
        "stopped_by_budget": bool(budget.stopped),
        "seconds": round(time.perf_counter() - started, 2),
        "params": p,
        "data": data,
    }
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2))
    return report


def _checkpoint_step(path: str | None) -> int:
    """The global step a checkpoint folder was written at (0 for none)."""
    if path is None:
        return 0
    state = json.loads((Path(path) / "trainer_state.json").read_text())
    return int(state.get("global_step", 0))


__all__ = ["AdaptParams", "Corpus", "adapt", "check_params", "evaluation_files", "gather_texts",
           "masked_batches", "masked_lm_loss"]
