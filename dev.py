#!/usr/bin/env python3
"""Developer entry point: needs only Python 3 (3.10+) and git.

    python3 dev.py example        # set up and serve the example site on port 8000
    python3 dev.py example 8001   # ... on another port
    python3 dev.py example --allauth  # ... with django-allauth's phone pages
    python3 dev.py test           # set up and run the test suite

``example`` creates ``.venv-example`` on first use with only what the site needs: the
project (editable) with its ``[openapi,allauth]`` extras and
``requirements-example.txt``. It serves in sandbox mode on SQLite, on 127.0.0.1, and its
process becomes the web server, so stopping it (Ctrl-C, or ``kill`` of its PID) stops
the site. ``--allauth`` serves the same site with django-allauth's signup, phone
verification, phone change and login by code (``settings_allauth.py``, its own SQLite
file).

``test`` creates ``.venv`` on first use with the whole toolchain: the project
(editable) with every extra, ``requirements-test.txt``, ``requirements-lint.txt`` (ruff,
mypy) and the example's requirements (the suite serves the example too). Extra
arguments after ``test`` go to pytest.

Each venv is reinstalled when ``pyproject.toml`` or one of its requirement files
changed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Env:
    """One virtual environment and what is installed into it."""

    path: Path
    extras: str
    requirements: tuple[str, ...]

    @property
    def python(self) -> Path:
        """The venv's interpreter."""
        bindir = "Scripts" if os.name == "nt" else "bin"
        return self.path / bindir / ("python.exe" if os.name == "nt" else "python")

    def ensure(self) -> None:
        """Create the venv and (re)install when its inputs changed."""
        if not self.python.exists():
            print(f"Creating {self.path} ...", flush=True)
            venv.EnvBuilder(with_pip=True).create(self.path)
        stamp = self.path / ".installed"
        inputs = [ROOT / "pyproject.toml", *(ROOT / r for r in self.requirements)]
        newest = max(p.stat().st_mtime for p in inputs)
        if stamp.exists() and stamp.stat().st_mtime >= newest:
            return
        pip = [self.python, "-m", "pip", "install", "--quiet"]
        run(*pip, "--upgrade", "pip")
        requirements = [arg for r in self.requirements for arg in ("-r", r)]
        run(*pip, "-e", f".[{self.extras}]", *requirements)
        stamp.touch()


# The example site needs no test tools: a small venv of its own (no Playwright, no
# schemathesis, no type checker), so the demo installs in a fraction of the time.
EXAMPLE_ENV = Env(
    ROOT / ".venv-example", "openapi,allauth", ("requirements-example.txt",)
)
TEST_ENV = Env(
    ROOT / ".venv",
    "openapi,redis,allauth",
    ("requirements-test.txt", "requirements-lint.txt", "requirements-example.txt"),
)


def run(*cmd: object) -> None:
    """Echo and run one command from the repository root; raise if it fails."""
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT)


def replace_process(*cmd: object) -> None:
    """Echo and become ``cmd``: the PID stays the same, so a signal sent to this
    process (Ctrl-C, ``kill``) reaches the command itself and nothing outlives it."""
    args = [str(c) for c in cmd]
    print("+", " ".join(args), flush=True)
    os.chdir(ROOT)
    os.execv(args[0], args)


def example(args: list[str]) -> None:
    """Migrate, create the demo admin, and serve the example site on ``args[0]``
    (a port on 127.0.0.1, 8000 by default); ``--allauth`` serves its allauth
    variant."""
    allauth = "--allauth" in args
    args = [arg for arg in args if arg != "--allauth"]
    port = args[0] if args else "8000"
    if not port.isdigit() or not 0 < int(port) < 65536:
        sys.exit(f"dev.py example: the port must be a number (1-65535), not {port!r}")
    EXAMPLE_ENV.ensure()
    python = EXAMPLE_ENV.python
    manage = ROOT / "example_project" / "manage.py"
    settings = ["--settings=example_project.settings_allauth"] if allauth else []
    run(python, manage, "migrate", "--noinput", *settings)
    run(python, manage, "ensure_demo_admin", *settings)
    pages = (
        f"  allauth:       http://127.0.0.1:{port}/accounts/signup/"
        "  (then /accounts/login/code/ to log in by a code)\n"
        if allauth
        else ""
    )
    print(
        f"\n  Example site:  http://127.0.0.1:{port}/\n"
        f"{pages}"
        f"  Admin:         http://127.0.0.1:{port}/admin/"
        "  (user: admin, password: admin)\n"
        "  Sandbox mode: codes are not sent; read them on the sandbox inbox page"
        f" (http://127.0.0.1:{port}/sandbox/inbox/).\n",
        flush=True,
    )
    # --noreload: the autoreloader serves from a child process, which Django stops on
    # SIGTERM or Ctrl-C of its parent but not on SIGKILL; with one process any kill of
    # this PID stops the site. Restart the command to pick up code changes.
    replace_process(
        python, manage, "runserver", "--noreload", *settings, f"127.0.0.1:{port}"
    )


def test(args: list[str]) -> None:
    """Run the test suite (PostgreSQL/Redis tests run when their URLs are set)."""
    TEST_ENV.ensure()
    replace_process(TEST_ENV.python, "-m", "pytest", *args)


def main() -> None:
    """Dispatch ``example`` or ``test``; print the usage otherwise."""
    # ruff assumes the package's floor; dev.py may be started by any python3.
    if sys.version_info < (3, 10):  # noqa: UP036
        sys.exit("django-verifynow needs Python 3.10 or newer.")
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
