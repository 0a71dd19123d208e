"""`pulse incidents list|ack`: the incidents every replica shares, from the control store."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any, Protocol

from dependency_injector.wiring import Provide, inject

from pulse.core import incidents
from pulse.core.incidents import Incident, Transition
from pulse.ports.clock import Clock
from pulse.ports.incidents import IncidentStore

COMMANDS = ("incidents",)


class AlertSender(Protocol):
    async def send_now(self, transition: Transition) -> bool: ...


def add_commands(sub: Any) -> None:
    parser = sub.add_parser("incidents", help="list or acknowledge incidents (all replicas')")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="incidents newest first")
    listing.add_argument("--state", choices=("open", "resolved"), help="only these")
    listing.add_argument("--limit", type=int, default=50, help="show at most this many (50)")
    listing.add_argument(
        "--format", choices=("table", "json"), default="table", help="table (default) or json"
    )
    ack = actions.add_parser("ack", help="acknowledge an incident (and --resolve it)")
    ack.add_argument("id", help="the incident's id, as `pulse incidents list` shows it")
    ack.add_argument("--resolve", action="store_true", help="resolve it now, and alert so")
    ack.add_argument("--who", help="who acknowledges (default: cli:<user>)")


async def dispatch(args: argparse.Namespace) -> int:
    if args.action == "list":
        return await list_incidents(args)
    return await ack_incident(args)


@inject
async def list_incidents(
    args: argparse.Namespace, store: IncidentStore = Provide["incident_store"]
) -> int:
    found = [i for i in await store.recent(500) if not args.state or i.state.value == args.state]
    found = found[: max(1, args.limit)]
    if args.format == "json":
        print(json.dumps({"incidents": [i.as_dict() for i in found]}, indent=2))
        return 0
    for incident in found:
        print(_line(incident))
    print(f"{len(found)} incident(s)")
    return 0


def _line(incident: Incident) -> str:
    acked = f"  acked by {incident.acked_by}" if incident.acked_by else ""
    return (
        f"{incident.id}  {incident.state.value:8}  {incident.signature}  "
        f"×{incident.count}  first {incident.first_seen:%Y-%m-%d %H:%M:%S}  "
        f"last {incident.last_seen:%Y-%m-%d %H:%M:%S}{acked}  {incident.sample}"
    )


@inject
async def ack_incident(
    args: argparse.Namespace,
    store: IncidentStore = Provide["incident_store"],
    alerts: AlertSender = Provide["alerts"],
    clock: Clock = Provide["clock"],
) -> int:
    who = args.who or f"cli:{getpass.getuser()}"
    try:
        incident, change = await incidents.acknowledge(
            store, args.id, who, clock.now(), resolve_it=args.resolve
        )
    except incidents.UnknownIncident as exc:
        print(f"pulse: {exc}", file=sys.stderr)
        return 1
    if change is not None:
        await alerts.send_now(change)
    print(_line(incident))
    return 0
