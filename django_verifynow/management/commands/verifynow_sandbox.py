"""``manage.py verifynow_sandbox``: serve the VerifyNow simulator over HTTP.

The same server and options as ``python -m django_verifynow.sandbox`` (see
``docs/sandbox.md``), from inside a Django project.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_verifynow.sandbox.__main__ import build_parser, main


def _sandbox_actions() -> list[argparse.Action]:
    # The options are defined once, by the module's parser; reading its actions keeps
    # this command in step with it.
    return [a for a in build_parser()._actions if a.option_strings and a.dest != "help"]


class Command(BaseCommand):
    """Serve the sandbox simulator until interrupted."""

    help = (
        "Serve a local VerifyNow simulator (token, send, validateOtp). Ctrl-C stops it."
    )
    requires_system_checks: list[
        str
    ] = []  # a dev server for the vendor, not for Django

    def add_arguments(self, parser: CommandParser) -> None:
        for action in _sandbox_actions():
            kwargs: dict[str, Any] = {
                "dest": action.dest,
                "help": action.help,
                "default": action.default,
            }
            if isinstance(action, argparse._StoreTrueAction):
                kwargs["action"] = "store_true"
            else:
                kwargs.update(type=action.type, choices=action.choices)
            parser.add_argument(*action.option_strings, **kwargs)

    def handle(self, *args: Any, **options: Any) -> None:
        argv: list[str] = []
        for action in _sandbox_actions():
            value = options.get(action.dest)
            if isinstance(action, argparse._StoreTrueAction):
                if value:
                    argv.append(action.option_strings[-1])
            elif value is not None:
                argv += [action.option_strings[-1], str(value)]
        status = main(argv)
        if status:
            raise CommandError(
                f"The sandbox stopped with status {status}.", returncode=status
            )
