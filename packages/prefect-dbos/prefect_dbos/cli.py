"""``prefect-dbos``: the command line (``prefect-dbos bridge --block NAME``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prefect-dbos", description="Prefect integration for DBOS workflows.")
    commands = parser.add_subparsers(dest="command", required=True)
    bridge = commands.add_parser(
        "bridge", help="emit a Prefect event (dbos.workflow.<status>) for every DBOS workflow that ends"
    )
    bridge.add_argument("--block", required=True, help="name of a saved DBOS System Database block")
    bridge.add_argument("--name", help="the bridge's name: its position is stored under it (default: the block's)")
    bridge.add_argument("--workflow-name", action="append", help="only these workflows (repeatable)")
    bridge.add_argument("--queue", action="append", help="only workflows of these queues (repeatable)")
    bridge.add_argument(
        "--status", action="append", help="only these statuses (repeatable; default: every terminal status)"
    )
    bridge.add_argument(
        "--run-deployment",
        metavar="FLOW/DEPLOYMENT",
        help="also start this deployment once per completion (parameters workflow_id, status)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns its exit code."""
    args = _parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stdout)  # Prefect configures the root logger on import
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    ours = logging.getLogger("prefect_dbos")
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    return asyncio.run(_bridge(args))


async def _bridge(args: argparse.Namespace) -> int:
    from dbos_orchestrator.status import DBOSWorkflowStatus
    from dbos_orchestrator.waiting.feed import CompletionFilter

    from prefect_dbos.bridge import describe, log, run_bridge
    from prefect_dbos.database import DBOSSystemDatabase

    database = await DBOSSystemDatabase.aload(args.block)
    statuses = frozenset(DBOSWorkflowStatus.parse(s.upper()) for s in args.status) if args.status else None
    flt = CompletionFilter(
        names=frozenset(args.workflow_name) if args.workflow_name else None,
        queue_names=frozenset(args.queue) if args.queue else None,
        **({"statuses": statuses} if statuses else {}),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    name = args.name or args.block
    log.info("DBOS bridge %r: %s", name, describe(flt))
    print("BRIDGE READY", flush=True)
    await run_bridge(database, name=name, flt=flt, stop=stop, run_deployment=args.run_deployment)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
