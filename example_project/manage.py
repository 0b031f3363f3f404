#!/usr/bin/env python3
"""Django's command-line utility for the example project."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    """Run a management command with the example settings."""
    here = Path(__file__).resolve().parent
    # The example uses the package from the repository checkout, installed or not.
    sys.path.insert(0, str(here))
    sys.path.insert(1, str(here.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
