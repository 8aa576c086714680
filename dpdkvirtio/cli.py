"""The ``dpdkvirtio`` command line (also ``python -m dpdkvirtio``).

User mistakes end in one readable line on stderr and a non-zero exit status, never
a traceback (set DPDKVIRTIO_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .errors import ConfigError, DpdkError


def _demo(args) -> int:
    from . import demo
    demo.check_args(args)
    return demo.run(args)


def _demo_peer(args) -> int:
    from . import demo
    return demo.run_peer(args)


def build_parser() -> argparse.ArgumentParser:
    from . import demo
    p = argparse.ArgumentParser(prog="dpdkvirtio",
                                description="vhost-user / virtio-user data planes on DPDK")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    d = sub.add_parser("demo", help="pump packets between a vhost-user and a virtio-user port")
    demo.add_arguments(d)
    d.set_defaults(func=_demo)
    dp = sub.add_parser("demo-peer", help=argparse.SUPPRESS)
    demo.add_peer_arguments(dp)
    dp.set_defaults(func=_demo_peer)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * args.verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ConfigError, DpdkError, OSError, RuntimeError) as e:
        if os.environ.get("DPDKVIRTIO_DEBUG"):
            raise
        print(f"dpdkvirtio: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1


if __name__ == "__main__":
    sys.exit(main())
