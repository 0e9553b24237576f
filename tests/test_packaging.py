"""pyproject.toml and the requirements files say the same thing, so `pip install -e .[dev]` and
`pip install -r requirements-dev.txt` install the same versions."""

from __future__ import annotations

import os
import re
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_NOQA = re.compile(r"#\s*noqa:\s*([A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)")


def _pins(name: str) -> list[str]:
  with open(os.path.join(REPO, name)) as f:
    lines = [line.split("#")[0].strip() for line in f]
  return [line for line in lines if line and not line.startswith("-r")]


def _pyproject() -> dict:
  with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
    return tomllib.load(f)


def test_runtime_dependencies_are_read_from_requirements_txt():
  project = _pyproject()
  assert "dependencies" in project["project"]["dynamic"]
  assert project["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
  assert all("==" in pin for pin in _pins("requirements.txt"))  # every runtime dependency pinned


def test_dev_extra_equals_requirements_dev_txt():
  assert _pyproject()["project"]["optional-dependencies"]["dev"] == _pins("requirements-dev.txt")
  assert any(pin.startswith("ruff==") for pin in _pins("requirements-dev.txt"))


def test_pytest_settings_live_in_pyproject_only():
  assert not os.path.exists(os.path.join(REPO, "pytest.ini"))
  options = _pyproject()["tool"]["pytest"]["ini_options"]
  assert options["testpaths"] == ["tests"] and "--strict-markers" in options["addopts"]
  assert any(marker.startswith("slow:") for marker in options["markers"])


def test_every_noqa_code_is_a_rule_ruff_checks():
  """A `# noqa: CODE` for a rule that is not selected hides nothing and misleads the reader."""
  lint = _pyproject()["tool"]["ruff"]["lint"]
  selected, ignored = tuple(lint["select"]), set(lint.get("ignore", ()))
  codes = set()
  for folder in ("ar3po_jax", "configs", "tests", "benchmarks", "scripts"):
    for root, _, files in os.walk(os.path.join(REPO, folder)):
      for name in files:
        if name.endswith(".py"):
          with open(os.path.join(root, name)) as f:
            for line in f:
              for match in _NOQA.finditer(line):
                codes.update(code.strip() for code in match.group(1).split(","))
  assert codes, "expected some noqa codes in the code base"
  for code in codes:
    assert code.startswith(selected) and code not in ignored, code
