"""`pulse infra create [--dry-run]`: the DynamoDB table(s) and SQS queues the settings name."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from dependency_injector.wiring import Provide, inject

COMMANDS = ("infra",)

CreateInfra = Callable[[bool], Awaitable[list[str]]]
"""dry_run -> one line per thing checked, created, or (dry run) that would be."""


def add_commands(sub: Any) -> None:
    infra = sub.add_parser(
        "infra",
        help="provision the AWS stores (LEDGER=dynamodb, INBOX=sqs)",
        description="Provision what LEDGER=dynamodb and INBOX=sqs need, named by the settings.",
    )
    actions = infra.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="create the table(s) and queues idempotently; print what was done",
        description=(
            "Create, unless present: the DynamoDB table DYNAMO_TABLE (and DYNAMO_CONTROL_TABLE) "
            "with hash key pk, PAY_PER_REQUEST and TTL on expires_at when LEDGER=dynamodb; the "
            "SQS queue SQS_QUEUE and its dead-letter queue SQS_DLQ (redrive after "
            "SQS_MAX_RECEIVE_COUNT receives) when INBOX=sqs. Running it again only checks."
        ),
    )
    create.add_argument(
        "--dry-run", action="store_true", help="only read: say what exists and what would change"
    )


async def dispatch(args: argparse.Namespace) -> int:
    return await create(args)


@inject
async def create(args: argparse.Namespace, infra: CreateInfra = Provide["infra"]) -> int:
    try:
        lines = await infra(args.dry_run)
    except ValueError as exc:  # nothing configured to create
        print(f"pulse: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"pulse: infra create failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0
