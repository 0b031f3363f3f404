#!/usr/bin/env python3
"""Developer entry point: needs only Python 3 (3.10+) and git.

    python3 dev.py example   # set up and serve the example site (sandbox mode, SQLite)
    python3 dev.py test      # set up and run the test suite

Both create ``.venv`` on first use and install the project (editable) with what the
example and the tests need. Extra arguments after ``test`` go to pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".installed"


def run(*cmd: object, **kwargs: object) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kwargs)  # type: ignore[arg-type]


def ensure_venv() -> None:
    """Create .venv and (re)install when the requirement files changed."""
    if sys.version_info < (3, 10):
        sys.exit("django-verifynow needs Python 3.10 or newer.")
    if not PYTHON.exists():
        print(f"Creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    inputs = [
        ROOT / "pyproject.toml",
        ROOT / "requirements-test.txt",
        ROOT / "requirements-example.txt",
    ]
    newest = max(p.stat().st_mtime for p in inputs)
    if STAMP.exists() and STAMP.stat().st_mtime >= newest:
        return
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(
        PYTHON,
        "-m",
        "pip",
        "install",
        "--quiet",
        "-e",
        ".[openapi]",
        "-r",
        "requirements-test.txt",
        "-r",
        "requirements-example.txt",
    )
    STAMP.touch()


def example(args: list[str]) -> None:
    """Migrate, create the demo admin, and serve the example site."""
    ensure_venv()
    project = ROOT / "example_project"
    run(PYTHON, project / "manage.py", "migrate", "--noinput")
    run(PYTHON, project / "manage.py", "ensure_demo_admin")
    port = args[0] if args else "8000"
    print(
        f"\n  Example site:  http://127.0.0.1:{port}/\n"
        f"  Admin:         http://127.0.0.1:{port}/admin/  (user: admin, password: admin)\n"
        "  Sandbox mode: codes are not sent; read them on the sandbox inbox page.\n",
        flush=True,
    )
    run(PYTHON, project / "manage.py", "runserver", f"127.0.0.1:{port}")


def test(args: list[str]) -> None:
    """Run the test suite (PostgreSQL/Redis tests run when their URLs are set)."""
    ensure_venv()
    run(PYTHON, "-m", "pytest", *args)


def main() -> None:
    commands = {"example": example, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    try:
        commands[sys.argv[1]](sys.argv[2:])
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
