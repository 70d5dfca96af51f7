"""The composite action (action.yml), run here step by step the way a runner would: each
``run:`` script under ``bash -eo pipefail`` with its ``env:`` resolved, stand-ins for ``gh``
(a release is a folder) and ``issue-labeler retrain`` (adds a version to a real registry and
exits with the code the test asks for). Setting up Python and installing the package are the
only steps left out. What is checked: retrain's exit codes become the ``result`` output or a
failed step, every input reaches the command line, the registry survives the round trip
through the release, and a failed download never leads to an upload."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from labeler.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
SKIPPED_STEPS = {"setup", "install"}  # need the network; their inputs are checked statically below
REPOSITORY = "acme/widgets"
TOKEN = "token-from-the-workflow"

FAKE_GH = r'''
import os, shutil, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("gh " + " ".join(args) + f" GH_TOKEN={os.environ.get('GH_TOKEN')}\n")
if os.environ.get("FAKE_GH_ERROR"):
    sys.exit(print(os.environ["FAKE_GH_ERROR"], file=sys.stderr) or 1)
def option(long, short):
    return next(args[i + 1] for i, a in enumerate(args) if a in (long, short))
assert args[0] == "release" and option("--repo", "-R") == os.environ["GITHUB_REPOSITORY"], args
command, release = args[1], Path(os.environ["FAKE_RELEASES"]) / args[2]
if command == "view":
    if not release.is_dir():
        sys.exit(print("release not found", file=sys.stderr) or 1)
    if "--json" in args:
        print("\n".join(sorted(p.name for p in release.iterdir())))
elif command == "download":
    assert option("--output", "-O") == "-"
    sys.stdout.buffer.write((release / option("--pattern", "-p")).read_bytes())
elif command == "create":
    release.mkdir()
elif command == "upload":
    assert "--clobber" in args
    shutil.copy(args[3], release / Path(args[3]).name)
else:
    sys.exit(f"fake gh: unexpected {args}")
'''

FAKE_RETRAIN = r'''
import json, os, sys
from pathlib import Path
from labeler.registry import Registry
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("retrain " + json.dumps({"argv": args, "token": os.environ.get("GITHUB_TOKEN")}) + "\n")
assert args[0] == "retrain", args
code = int(os.environ["FAKE_RETRAIN_EXIT"])
if code in (0, 3):  # a candidate was trained: a new version, promoted or staged
    root = Path(args[args.index("--registry") + 1])
    repo = args[args.index("--repo") + 1] if "--repo" in args else args[1]
    registry = Registry(root)
    number = len(registry.versions(repo)) + 1
    (root / repo / "versions" / f"{number:04d}").mkdir(parents=True)
    registry.promote(repo, number) if code == 0 else registry.stage(repo, number)
sys.exit(code)
'''

EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


@dataclass
class ActionRun:
    """The outcome of one run: ``failed`` is the id of the step that failed (None if none)."""

    failed: str | None
    returncode: int
    outputs: dict[str, str]
    stderr: str


class FakeRunner:
    """Runs action.yml's scripts against a folder of fake releases that persists across runs."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.releases = tmp / "releases"
        self.releases.mkdir()
        self.log = tmp / "calls.log"
        self.bin = tmp / "bin"
        self.bin.mkdir()
        for name, code in (("gh", FAKE_GH), ("issue-labeler", FAKE_RETRAIN)):
            path = self.bin / name
            path.write_text(f"#!{sys.executable}\n{code}", encoding="utf-8")
            path.chmod(0o755)
        self.runs = 0

    def calls(self, prefix: str) -> list[str]:
        lines = self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []
        return [line for line in lines if line.startswith(prefix + " ")]

    def retrain_calls(self) -> list[dict]:
        return [json.loads(line.split(" ", 1)[1]) for line in self.calls("retrain")]

    def run(self, inputs: dict[str, str] | None = None, *, retrain_exit: int = 0,
            gh_error: str = "") -> ActionRun:
        self.runs += 1
        runner_temp = self.tmp / f"runner-temp-{self.runs}"  # a fresh runner each time
        workspace = self.tmp / "workspace"
        runner_temp.mkdir()
        workspace.mkdir(exist_ok=True)
        github = {"github.repository": REPOSITORY, "github.token": TOKEN}
        values = {name: EXPRESSION.sub(lambda m: github[m.group(1)], str(spec.get("default", "")))
                  for name, spec in ACTION["inputs"].items()}
        unknown = set(inputs or {}) - set(values)
        assert not unknown, f"not inputs of action.yml: {unknown}"
        values.update(inputs or {})
        steps: dict[str, dict[str, str]] = {}

        def resolve(text: str) -> str:
            def one(match: re.Match) -> str:
                expr = match.group(1)
                if m := re.fullmatch(r"inputs\.([\w-]+)", expr):
                    return values[m.group(1)]
                if m := re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expr):
                    return steps.get(m.group(1), {}).get(m.group(2), "")
                raise AssertionError(f"this test cannot evaluate ${{{{ {expr} }}}}: teach it")
            return EXPRESSION.sub(one, str(text))

        def condition(expr: str) -> bool:
            m = re.fullmatch(r"inputs\.([\w-]+) == '([^']*)'", expr.strip())
            assert m, f"this test cannot evaluate if: {expr}: teach it"
            return values[m.group(1)] == m.group(2)

        base_env = {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}", "HOME": str(self.tmp),
                    "PYTHONPATH": str(ROOT), "RUNNER_TEMP": str(runner_temp),
                    "GITHUB_REPOSITORY": REPOSITORY, "GITHUB_ACTION_PATH": str(ROOT),
                    "FAKE_LOG": str(self.log), "FAKE_RELEASES": str(self.releases),
                    "FAKE_RETRAIN_EXIT": str(retrain_exit), "FAKE_GH_ERROR": gh_error}
        for step in ACTION["runs"]["steps"]:
            if step["id"] in SKIPPED_STEPS or ("if" in step and not condition(step["if"])):
                continue
            output = runner_temp / f"{step['id']}.output"
            output.touch()
            env = {**base_env, "GITHUB_OUTPUT": str(output),
                   **{k: resolve(v) for k, v in step.get("env", {}).items()}}
            proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                                  env=env, cwd=workspace, capture_output=True, text=True, timeout=60)
            if proc.returncode:
                return ActionRun(step["id"], proc.returncode, {}, proc.stderr + proc.stdout)
            steps[step["id"]] = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
        outputs = {name: resolve(spec["value"]) for name, spec in ACTION["outputs"].items()}
        return ActionRun(None, 0, outputs, "")

    def published(self, tmp: Path, tag: str = "issue-labeler-models") -> Registry:
        """What the bot gets: the release's tarball unpacked into a fresh directory."""
        asset = self.releases / tag / "registry.tar.gz"
        target = tmp / f"pulled-{self.runs}"
        target.mkdir()
        with tarfile.open(asset) as tar:
            names = tar.getnames()
            tar.extractall(target, filter="data")
        assert not [n for n in names if n.endswith(".lock") or n.endswith(".tmp")], names
        return Registry(target)


@pytest.fixture
def runner(tmp_path) -> FakeRunner:
    return FakeRunner(tmp_path)


def test_first_run_creates_the_release_and_later_runs_build_on_it(runner, tmp_path):
    first = runner.run()
    assert first.failed is None, first.stderr
    assert first.outputs["result"] == "promoted"
    assert [c.split()[2] for c in runner.calls("gh")] == ["view", "view", "create", "upload"]
    assert runner.published(tmp_path).pointers(REPOSITORY)["active"] == 1

    second = runner.run(retrain_exit=3)  # the next candidate is not better: kept as staged
    assert second.failed is None, second.stderr
    assert second.outputs["result"] == "kept"
    # it started from the published registry (version 1 came back from the release)
    assert Path(second.outputs["registry"], REPOSITORY, "versions", "0001").is_dir()
    pulled = runner.published(tmp_path)
    assert pulled.pointers(REPOSITORY) == {"active": 1, "staged": 2, "backup": None}

    third = runner.run()
    assert third.outputs["result"] == "promoted"
    assert runner.published(tmp_path).pointers(REPOSITORY) == {"active": 3, "staged": 2, "backup": 1}
    assert [c.split()[2] for c in runner.calls("gh")].count("create") == 1


@pytest.mark.parametrize("code", [1, 2])
def test_a_failed_retrain_fails_the_action_and_publishes_nothing(runner, code):
    result = runner.run(retrain_exit=code)
    assert (result.failed, result.returncode) == ("retrain", code)
    assert f"retrain failed with exit code {code}" in result.stderr
    assert not any(runner.releases.iterdir())
    assert [c.split()[2] for c in runner.calls("gh")] == ["view"]


def test_a_failed_download_stops_before_training(runner, tmp_path):
    assert runner.run().failed is None  # a release with a registry exists
    before = (runner.releases / "issue-labeler-models" / "registry.tar.gz").read_bytes()
    result = runner.run(gh_error="HTTP 401: Bad credentials (https://api.github.com/...)")
    assert result.failed == "download"
    assert "Bad credentials" in result.stderr
    assert len(runner.retrain_calls()) == 1  # only the first run trained
    assert (runner.releases / "issue-labeler-models" / "registry.tar.gz").read_bytes() == before


def test_a_release_without_the_asset_starts_empty(runner):
    (runner.releases / "issue-labeler-models").mkdir()  # e.g. created by hand, or an upload failed
    result = runner.run()
    assert result.failed is None, result.stderr
    assert [c.split()[2] for c in runner.calls("gh")] == ["view", "view", "upload"]


def test_publish_false_is_a_dry_run(runner):
    result = runner.run({"publish": "false"})
    assert result.failed is None and result.outputs["result"] == "promoted"
    assert not any(runner.releases.iterdir())
    assert Registry(result.outputs["registry"]).pointers(REPOSITORY)["active"] == 1


# input -> retrain's option; every other input must appear in OTHER_INPUTS with where it goes
RETRAIN_OPTIONS = {"repo": "--repo", "label-map": "--label-map", "strategy": "--strategy",
                   "budget": "--budget", "objective": "--objective", "holdout": "--holdout",
                   "margin": "--margin", "max-precision-drop": "--max-precision-drop",
                   "min-support": "--min-support", "corrections": "--corrections", "report": "--report"}
OTHER_INPUTS = {"source", "release-tag", "publish", "token", "python-version", "torch-version"}


def test_every_input_reaches_retrain(runner):
    assert set(ACTION["inputs"]) == set(RETRAIN_OPTIONS) | OTHER_INPUTS
    given = {"repo": "acme/widgets", "label-map": "labels map.yml", "strategy": "linear",
             "budget": "600", "objective": "precision=0.9", "holdout": "20%", "margin": "0.01",
             "max-precision-drop": "0.05", "min-support": "5", "corrections": "corrections.jsonl",
             "report": "out/report", "source": "issues.jsonl", "token": "a-token",
             "release-tag": "my-models"}
    result = runner.run(given)
    assert result.failed is None, result.stderr
    (call,) = runner.retrain_calls()
    argv = call["argv"]
    assert argv[:2] == ["retrain", "issues.jsonl"]
    options = dict(zip(argv[2::2], argv[3::2]))
    assert options.pop("--registry").endswith("issue-labeler-registry")
    assert options == {flag: given[name] for name, flag in RETRAIN_OPTIONS.items()}
    assert call["token"] == "a-token"  # through the environment, not the command line
    assert all(c.endswith("GH_TOKEN=a-token") and " my-models " in c for c in runner.calls("gh"))


def test_empty_inputs_leave_retrain_its_defaults(runner):
    runner.run()
    (call,) = runner.retrain_calls()
    assert call["argv"][1] == REPOSITORY and call["token"] == TOKEN
    assert [a for a in call["argv"] if a.startswith("--")] == ["--registry"]


def test_the_install_steps_use_their_inputs():
    steps = {s["id"]: s for s in ACTION["runs"]["steps"]}
    assert steps["setup"]["with"]["python-version"] == "${{ inputs.python-version }}"
    assert steps["install"]["env"]["TORCH_VERSION"] == "${{ inputs.torch-version }}"
    assert '"torch==${TORCH_VERSION}"' in steps["install"]["run"]
    assert "download.pytorch.org/whl/cpu" in steps["install"]["run"]


def readme_pull_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Pulling the promoted model into the bot", 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0]


def test_the_readme_pull_swaps_in_each_published_registry(runner, tmp_path):
    """The README's commands for the bot's machine, run by ``sh`` as cron would: the registry
    the bot reads is the one the Action published, and a new pull is a new pointers file."""
    serving = tmp_path / "srv" / "registry"
    env = {"PATH": f"{runner.bin}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "ISSUE_LABELER_REGISTRY": str(serving), "GITHUB_REPOSITORY": REPOSITORY,
           "FAKE_LOG": str(runner.log), "FAKE_RELEASES": str(runner.releases)}
    snippet = readme_pull_snippet().replace("REPO=acme/widgets", f"REPO={REPOSITORY}")
    tokens = []
    for expected in ({"active": 1, "staged": None, "backup": None}, {"active": 2, "staged": None, "backup": 1}):
        assert runner.run().failed is None
        proc = subprocess.run(["sh", "-c", snippet], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        registry = Registry(serving)
        assert registry.repos() == [REPOSITORY]
        assert registry.pointers(REPOSITORY) == expected
        tokens.append(registry.token(REPOSITORY))
    assert tokens[0] != tokens[1]
    assert (serving / REPOSITORY).is_symlink()
