"""What became of every acknowledged message: pure functions over the
console lines of a power-cut boot and of the recovery boot after it.

For each id the crash boot printed "QP ACK <id>" for (qmail-queue had exited
0: the sender was told the mail is safe), after the repair at boot:
  delivered  it is in the Maildir
  queued     its message file is in the queue with what makes qmail-send
             deliver it: todo/<n>, or info/<n> with local/<n> or remote/<n>
  stranded   its message file is there, but nothing will ever deliver it
             (qmail-send only looks at todo/; the file is cleaned away later)
  lost       no trace of it, or only in lost+found
Then the recovery boot runs qmail-send: every delivered or queued message
must be in the Maildir afterwards, once.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_ID = r"[0-9]{1,4}\.[0-9]{1,9}"
_ACK = re.compile(rf"^QP ACK ({_ID})$")
_FACT = re.compile(rf"^QP (BEFORE|AFTER) (?:MESS ([0-9]{{1,20}}) ({_ID}|-)|FILE (todo|intd|info|local|remote) "
                   rf"([0-9]{{1,20}})|MAILDIR ({_ID}|-)|LOSTFOUND ({_ID}|-))$")
STATES = ("delivered", "queued", "stranded", "lost")


@dataclass
class Snapshot:
    """The queue and Maildir as one report of the recovery boot saw them."""

    mess: dict[str, str] = field(default_factory=dict)  # id -> queue file number
    files: dict[str, set[str]] = field(default_factory=dict)  # queue folder -> numbers
    maildir: Counter = field(default_factory=Counter)  # id -> messages with it
    lost_found: set[str] = field(default_factory=set)

    def has(self, folder: str, number: str) -> bool:
        return number in self.files.get(folder, set())

    def state_of(self, message_id: str) -> str:
        if self.maildir[message_id]:
            return "delivered"
        number = self.mess.get(message_id)
        if number is None:
            return "lost"
        if self.has("todo", number) or (self.has("info", number) and (self.has("local", number)
                                                                      or self.has("remote", number))):
            return "queued"
        return "stranded"


@dataclass(frozen=True)
class Outcome:
    acknowledged: int
    counts: dict[str, int]  # STATES -> messages
    not_recovered: tuple[str, ...]  # delivered or queued before, not in the Maildir after qmail-send ran
    duplicated: tuple[str, ...]  # acknowledged ids in the Maildir more than once after recovery
    examples: dict[str, tuple[str, ...]]  # a few ids per state that is not delivered

    @property
    def safe(self) -> bool:
        """Nothing stranded, nothing lost, all of it delivered in the end.
        Duplicates are reported, not failed: qmail delivers at least once, and
        a cut between a delivery and qmail-send noting it delivers it again."""
        return self.counts["stranded"] == 0 and self.counts["lost"] == 0 and not self.not_recovered


def acknowledged(lines: list[str]) -> list[str]:
    """The ids the crash boot acknowledged, in order, each once."""
    seen: dict[str, None] = {}
    for line in lines:
        match = _ACK.match(line)
        if match:
            seen.setdefault(match.group(1))
    return list(seen)


def snapshots(lines: list[str]) -> tuple[Snapshot, Snapshot]:
    """The BEFORE and AFTER reports of a recovery boot."""
    taken = {"BEFORE": Snapshot(), "AFTER": Snapshot()}
    for line in lines:
        match = _FACT.match(line)
        if not match:
            continue
        when, number, mess_id, folder, file_number, maildir_id, found_id = match.groups()
        snapshot = taken[when]
        if number is not None and mess_id != "-":
            snapshot.mess.setdefault(mess_id, number)
        elif folder is not None:
            snapshot.files.setdefault(folder, set()).add(file_number)
        elif maildir_id is not None and maildir_id != "-":
            snapshot.maildir[maildir_id] += 1
        elif found_id is not None and found_id != "-":
            snapshot.lost_found.add(found_id)
    return taken["BEFORE"], taken["AFTER"]


def classify(crash_lines: list[str], recovery_lines: list[str]) -> Outcome:
    ids = acknowledged(crash_lines)
    before, after = snapshots(recovery_lines)
    states = {message_id: before.state_of(message_id) for message_id in ids}
    counts = {state: 0 for state in STATES}
    for state in states.values():
        counts[state] += 1
    not_recovered = tuple(i for i in ids if states[i] in ("delivered", "queued") and not after.maildir[i])
    duplicated = tuple(i for i in ids if after.maildir[i] > 1)
    examples = {state: tuple(i for i in ids if states[i] == state)[:5] for state in ("queued", "stranded", "lost")}
    return Outcome(len(ids), counts, not_recovered, duplicated, examples)
