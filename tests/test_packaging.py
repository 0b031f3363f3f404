"""The package metadata says what is tested: classifiers equal the tox matrix, every
declared floor is pinned in requirements-min.txt (which scripts/matrix.sh oldest runs
the suite at), and the pre-commit hooks run the pinned linter."""

from __future__ import annotations

import configparser
import itertools
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ImportError:  # Python 3.10: pytest itself depends on tomli there
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _expand(pattern: str) -> list[str]:
    """tox's brace expansion: ``py{310,311}-dj{52}`` -> py310-dj52, py311-dj52."""
    parts = re.split(r"\{([^}]*)\}", pattern)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c.strip() for c in combo) for combo in itertools.product(*choices)]


def _tox_envs() -> list[str]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "tox.ini")
    lines = parser["tox"]["envlist"].splitlines()
    return [env for line in lines if line.strip() for env in _expand(line.strip())]


def _classified(prefix: str) -> set[str]:
    classifiers = _pyproject()["project"]["classifiers"]
    versions = {c.removeprefix(prefix) for c in classifiers if c.startswith(prefix)}
    return {v for v in versions if re.fullmatch(r"\d+\.\d+", v)}


def _factor_versions(envs: list[str], factor: str) -> set[str]:
    """``dj52`` -> 5.2, ``py310`` -> 3.10 over every env's factors."""
    found = set()
    for env in envs:
        for part in env.split("-"):
            match = re.fullmatch(rf"{factor}(\d)(\d+)", part)
            if match:
                found.add(f"{match[1]}.{match[2]}")
    return found


def test_expand_follows_tox_brace_syntax() -> None:
    assert _expand("py{310,313}-dj{52,60}") == [
        "py310-dj52",
        "py310-dj60",
        "py313-dj52",
        "py313-dj60",
    ]
    assert _expand("py310-min") == ["py310-min"]


def test_django_classifiers_are_the_tox_django_envs() -> None:
    tested = _factor_versions(_tox_envs(), "dj")
    assert tested, "tox.ini names no djXY env"
    assert _classified("Framework :: Django :: ") == tested


def test_python_classifiers_are_the_tox_python_envs() -> None:
    tested = _factor_versions(_tox_envs(), "py")
    assert _classified("Programming Language :: Python :: ") == tested
    floor = min(tested, key=lambda v: tuple(map(int, v.split("."))))
    assert _pyproject()["project"]["requires-python"] == f">={floor}"


def test_django_floor_is_the_oldest_tested_django() -> None:
    tested = _factor_versions(_tox_envs(), "dj")
    oldest = min(tested, key=lambda v: tuple(map(int, v.split("."))))
    django = next(
        Requirement(r)
        for r in _pyproject()["project"]["dependencies"]
        if Requirement(r).name == "Django"
    )
    assert str(django.specifier) == f">={oldest}"


def _min_pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements-min.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{line}: pin with =="
            pins[requirement.name.lower()] = Version(spec.version)
    return pins


def test_every_declared_floor_is_pinned_in_requirements_min() -> None:
    """Each dependency and extra has a ``>=`` floor, and requirements-min.txt pins
    exactly that floor (so the oldest matrix run tests what we declare), nothing
    more."""
    project = _pyproject()["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared.extend(extra)
    floors = {}
    for text in declared:
        requirement = Requirement(text)
        lower = [s for s in requirement.specifier if s.operator == ">="]
        assert len(lower) == 1, f"{text}: declare one >= floor"
        floors[requirement.name.lower()] = Version(lower[0].version)
    assert floors, "pyproject.toml declares no dependencies"
    assert _min_pins() == floors  # Version("8.13") == Version("8.13.0")


def test_the_oldest_tox_env_installs_requirements_min() -> None:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "tox.ini")
    assert "min: -r requirements-min.txt" in parser["testenv"]["deps"]
    assert "py310-min" in _tox_envs()


def test_pre_commit_runs_the_pinned_ruff() -> None:
    pinned = re.search(
        r"^ruff==(\S+)", (ROOT / "requirements-lint.txt").read_text(), re.M
    )
    assert pinned
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    hook = re.search(
        r"repo: https://github.com/astral-sh/ruff-pre-commit\s+rev: v?(\S+)", config
    )
    assert hook, "no ruff-pre-commit repo in .pre-commit-config.yaml"
    assert hook[1] == pinned[1]
