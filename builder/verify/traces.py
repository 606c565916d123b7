"""Reading what a verification sandbox printed: an SMTP conversation, an
strace of the queue, the log of the supervisor's calls. Each reader returns
(passed, evidence) so that the lifecycle reports why."""

from __future__ import annotations

import posixpath
import re
import shlex

from .hosts import Supervision


def smtp_script(subject: str, local: str, foreign: str) -> str:
    """A shell SMTP client for tcpclient (ucspi-tcp): reads the server on fd 6,
    writes on fd 7, prints the conversation as C:/S: lines."""
    dialogue = f"""
r() {{ IFS= read -r line <&6 || line="(connection closed)"; printf 'S: %s\\n' "$(printf '%s' "$line" | tr -d '\\r')"; }}
w() {{ printf '%s\\r\\n' "$1" >&7; printf 'C: %s\\n' "$1"; }}
r
w 'HELO client.verify.test'; r
w 'MAIL FROM:<sender@client.verify.test>'; r
w 'RCPT TO:<{local}>'; r
w 'RCPT TO:<{foreign}>'; r
w 'DATA'; r
printf 'Subject: {subject}\\r\\n\\r\\nsent by qmail-pkg verify over SMTP\\r\\n.\\r\\n' >&7; printf 'C: (message)\\n'; r
w 'QUIT'; r
"""
    return f"tcpclient -RHl0 127.0.0.1 25 sh -c {shlex.quote(dialogue)} 2>&1"


SMTP_EXPECTED = ("220", "250", "250", "250", "553", "354", "250", "221")


def smtp_transcript_ok(transcript: str) -> tuple[bool, str]:
    """The server said 220, accepted HELO, MAIL and the local RCPT, refused the
    foreign RCPT (553: not an open relay), took the message and said goodbye."""
    replies = [line[3:] for line in transcript.splitlines() if line.startswith("S: ")]
    codes = tuple(reply[:3] for reply in replies)
    summary = " | ".join(replies) or transcript.strip()[-200:] or "no reply"
    return codes == SMTP_EXPECTED, summary


_CALL = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)")


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


_FD_PATH = re.compile(r"^\d+<([^>]*)>")  # strace -y: fsync(4</var/qmail/queue/mess/3>)


_CHANGES = ("link", "linkat", "unlink", "unlinkat", "rename", "renameat", "renameat2")


def _changed_dir(args: str, cwd: str) -> str | None:
    """The directory whose entry a link/unlink/rename changed (the new name's)."""
    paths = _QUOTED.findall(args)
    if not paths:
        return None
    return posixpath.dirname(posixpath.normpath(posixpath.join(cwd, paths[-1])))


def fsync_follows_queue_changes(trace: str, queue: str) -> tuple[bool, str]:
    """Every successful link/unlink/rename in the queue is followed, in the same
    process and before its next such change, by an fsync of the very directory
    whose entry changed. Reads `strace -f -y` output (fds annotated with paths)."""
    cwd: dict[str, str] = {}
    pending: dict[str, tuple[str, str]] = {}  # pid -> (call, directory awaiting fsync)
    changes = 0
    failures: list[str] = []
    for line in trace.splitlines():
        match = _CALL.match(line)
        if not match:
            continue
        pid, call, args, result = match.groups()
        if int(result) != 0:
            continue
        here = cwd.get(pid, "/")
        if call == "chdir":
            paths = _QUOTED.findall(args)
            if paths:
                cwd[pid] = posixpath.normpath(posixpath.join(here, paths[0]))
        elif call in _CHANGES:
            directory = _changed_dir(args, here)
            if directory is None or not (directory + "/").startswith(queue.rstrip("/") + "/"):
                continue
            if pid in pending:
                failures.append(f"no fsync of {pending[pid][1]} after {pending[pid][0]}")
            pending[pid] = (f"{call}({args[:60]})", directory)
            changes += 1
        elif call in ("fsync", "fdatasync") and pid in pending:
            synced = _FD_PATH.match(args)
            if synced and synced.group(1) == pending[pid][1]:
                del pending[pid]
    failures.extend(f"no fsync of {directory} after {what}" for what, directory in pending.values())
    if changes == 0:
        return False, "no link/unlink in the queue was traced"
    if failures:
        return False, f"{changes} queue changes, {len(failures)} without a directory fsync: {failures[0]}"
    return True, f"{changes} queue link/unlink/rename calls, each followed by fsync of the changed directory"


def _fields(line: str) -> dict[str, str]:
    """The key=value words of a line the recording wrapper wrote."""
    return dict(word.split("=", 1) for word in line.split() if "=" in word)


def svc_order(log: list[str], sup: Supervision) -> tuple[bool, str]:
    """The scripts stopped qmail-send while the old binary was in place and
    started it again only once the new one was."""
    downs = [line for line in log if sup.is_stop_call(line, "qmail-send")]
    ups = [line for line in log if sup.is_start_call(line, "qmail-send")]
    if not downs:
        return False, f"the scripts never stopped qmail-send ({sup.control_command})"
    if not ups:
        return False, f"the scripts never started qmail-send again ({sup.control_command})"
    down, up = _fields(downs[0]), _fields(ups[-1])
    if "inode" not in down or "inode" not in up or "queued" not in down:
        return False, f"the recording wrapper's lines lack inode= or queued=: {downs[0][:120]!r}, {ups[-1][:120]!r}"
    inode_down, inode_up, queued = down["inode"], up["inode"], down["queued"]
    if log.index(downs[0]) > log.index(ups[-1]):
        return False, "the start came before the stop"
    if inode_down == inode_up:
        return False, ("qmail-send was not stopped before dpkg replaced it "
                       f"(same inode {inode_down} at svc -d and svc -u)")
    if not queued.isdigit() or int(queued) == 0:
        return False, "the queue was already empty at svc -d: the upgrade did not interrupt a working qmail-send"
    return True, (f"{sup.control_command} stopped the old qmail-send (inode {inode_down}, {queued} queue files), "
                  f"started the new (inode {inode_up})")


__all__ = ["fsync_follows_queue_changes", "smtp_script", "smtp_transcript_ok", "svc_order"]
