"""``python -m django_verifynow.sandbox``: serve the VerifyNow simulator over HTTP.

Runs without Django settings. Prints the base URL and the credentials to configure;
Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from .engine import (
    PROFILES,
    SANDBOX_CUSTOMER_ID,
    SANDBOX_PASSWORD,
    FakeClock,
    SandboxEngine,
)
from .server import SandboxServer

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m django_verifynow.sandbox",
        description="Serve a local VerifyNow simulator (token, send, validateOtp).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port, 0 = any (8765)")
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="default",
        help="HTTP-status profile",
    )
    parser.add_argument("--customer-id", default=SANDBOX_CUSTOMER_ID)
    parser.add_argument("--password", default=SANDBOX_PASSWORD)
    parser.add_argument("--otp-timeout", type=int, default=60, help="code validity (s)")
    parser.add_argument(
        "--max-attempts", type=int, default=5, help="wrong codes allowed"
    )
    parser.add_argument(
        "--sends-per-window", type=int, default=5, help="codes per number per window"
    )
    parser.add_argument("--send-window", type=int, default=3600, help="window (s)")
    parser.add_argument(
        "--fixed-code", default=None, help="use this code for every send"
    )
    parser.add_argument("--credits", type=int, default=None, help="sends before 508")
    parser.add_argument(
        "--fake-clock",
        action="store_true",
        help="start a fake clock, moved only by POST /__sim__/clock",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="do not log delivered codes"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until interrupted; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        engine = SandboxEngine(
            clock=FakeClock() if args.fake_clock else None,
            profile=args.profile,
            accounts={args.customer_id: args.password},
            otp_timeout=args.otp_timeout,
            max_attempts=args.max_attempts,
            sends_per_window=args.sends_per_window,
            send_window=args.send_window,
            fixed_code=args.fixed_code,
            credits=args.credits,
        )
    except (TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = SandboxServer(engine, host=args.host, port=args.port)
    try:
        url = server.url  # binds
    except OSError as exc:
        print(
            f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    print(f"VerifyNow sandbox listening on {url}  (profile {args.profile})")
    print("Configure Django with:")
    print(f'    VERIFYNOW = {{"BASE_URL": "{url}",')
    print(f'                 "CUSTOMER_ID": "{args.customer_id}",')
    print(f'                 "PASSWORD": "{args.password}"}}')
    print(f"Inspect: {url}/__sim__/outbox  {url}/__sim__/stats   Ctrl-C to stop.")
    sys.stdout.flush()
    # SIGTERM behaves like Ctrl-C, so `kill <pid>` also stops cleanly.
    # (Not possible outside the main thread, e.g. when embedded: the caller's job.)
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("Stopped.")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
