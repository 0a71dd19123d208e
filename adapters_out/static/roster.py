"""The ring-group roster from settings or a JSON file: the embedded stand-in for Aloware's API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pulse.core.model import RosterAgent, RosterSnapshot


class StaticRoster:
    """Roster port from `ROSTER_AGENTS` ids and/or `ROSTER_FILE`; neither means count everyone.

    The file is a JSON list of `{"id", "name", "email"}`, or an Aloware ring-group availability
    response (`{"test_results": [...]}`), optionally under a top-level `body` as in spec samples.
    It is read at construction (a bad file stops start-up) and again when it changes on disk.
    """

    def __init__(
        self,
        agent_ids: list[str] | None = None,
        file: Path | None = None,
        ring_group_id: str | None = None,
    ) -> None:
        self.agent_ids = [str(a).strip() for a in agent_ids or () if str(a).strip()]
        self.file = Path(file) if file is not None else None
        self.ring_group_id = ring_group_id
        self._loaded_version: int | None = None
        self._snapshot = self._load()

    async def snapshot(self) -> RosterSnapshot:
        if self.file is not None and self._file_version() != self._loaded_version:
            self._snapshot = self._load()
        return self._snapshot

    async def fetch(self) -> RosterSnapshot:
        """RosterSource for DimAgent sync: the file is the source, read fresh if it changed."""
        return await self.snapshot()

    async def refresh(self, snapshot: RosterSnapshot) -> None:
        """RosterCache: nothing to do, the gate already reads the same file."""

    def _file_version(self) -> int | None:
        assert self.file is not None
        try:
            return self.file.stat().st_mtime_ns
        except OSError:
            return None

    def _load(self) -> RosterSnapshot:
        agents: dict[str, RosterAgent] = {}
        if self.file is not None:
            self._loaded_version = self._file_version()
            for agent in read_roster_file(self.file):
                agents.setdefault(agent.agent_id, agent)
        for agent_id in self.agent_ids:
            agents.setdefault(agent_id, RosterAgent(agent_id=agent_id, name=agent_id))
        if not agents and self.file is None:
            return RosterSnapshot(agents=(), ring_group_id=self.ring_group_id, count_everyone=True)
        return RosterSnapshot(agents=tuple(agents.values()), ring_group_id=self.ring_group_id)


def read_roster_file(path: Path) -> list[RosterAgent]:
    """Agents in a roster file; ValueError naming the file and the problem."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"roster file {path}: cannot read it ({exc.strerror or exc})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"roster file {path}: not valid JSON ({exc})") from exc
    if isinstance(document, dict) and "body" in document:
        document = document["body"]
    if isinstance(document, dict) and "test_results" in document:
        document = document["test_results"]
    if not isinstance(document, list):
        raise ValueError(
            f"roster file {path}: expected a list of agents or an Aloware"
            ' {"test_results": [...]} response'
        )
    return [_agent(path, index, entry) for index, entry in enumerate(document)]


def _agent(path: Path, index: int, entry: Any) -> RosterAgent:
    where = f"roster file {path}: agent #{index + 1}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is not an object")
    raw_id = entry.get("id")
    # Aloware sends ids as numbers or strings; the snapshot always holds strings.
    if isinstance(raw_id, bool) or not isinstance(raw_id, int | str) or not str(raw_id).strip():
        raise ValueError(f"{where} has no usable id (got {raw_id!r})")
    agent_id = str(raw_id).strip()
    name, email = entry.get("name"), entry.get("email")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"{where} (id {agent_id}): name must be a string")
    if email is not None and not isinstance(email, str):
        raise ValueError(f"{where} (id {agent_id}): email must be a string")
    return RosterAgent(
        agent_id=agent_id, name=(name or "").strip() or agent_id, email=email or None
    )
