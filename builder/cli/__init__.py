"""`qmail-pkg`: thin command line over the stages. arguments.py parses,
commands.py calls the stages; this module runs a command and turns what a
user can cause into one line on stderr and a non-zero exit."""

from __future__ import annotations

import errno
import os
import signal
import sys
import traceback

from ..errors import QmailPkgError, RecipeError, printable
from .arguments import build_parser

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(BaseException):
    """SIGTERM, turned into an exception so that every `finally` and every
    sandbox's __exit__ runs exactly as for Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not cut the cleanup short
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return args.func(args)
    except RecipeError as exc:
        for line in exc.problems:
            print(printable(line), file=sys.stderr)
        return 1
    except QmailPkgError as exc:
        # messages quote names from archives, sandboxes and the environment:
        # whatever a module forgot to escape, one error stays one line
        print(printable(f"qmail-pkg: error: {exc}"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("qmail-pkg: interrupted; sandboxes removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("qmail-pkg: terminated; sandboxes removed", file=sys.stderr)
        return EXIT_TERMINATED
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            where = f" ({exc.filename})" if exc.filename else ""
            print(printable(f"qmail-pkg: error: no space left on the device{where}; free some space "
                            "(`docker image prune` removes unused images) and run again"), file=sys.stderr)
            return 1
        return _internal(exc)
    except Exception as exc:  # a bug: say so in one line, traceback only on request
        return _internal(exc)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _internal(exc: BaseException) -> int:
    if os.environ.get("QMAIL_PKG_DEBUG"):
        traceback.print_exception(exc)
    print(
        printable(f"qmail-pkg: internal error: {type(exc).__name__}: {exc} (set QMAIL_PKG_DEBUG=1 for details)"),
        file=sys.stderr,
    )
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
