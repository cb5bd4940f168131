"""The one status vocabulary of a run, parsed once at the wire boundary.

The service's job statuses (contract §3.2) are wrapped by four of our own::

    submitting     claimed in the run log, the job not created (or not known) yet      (ours)
    pending, queued, warming-up, in-progress, finalizing                               (the service's)
    downloading    the service said success; its files are not all on disk yet        (ours)
    success        the job succeeded AND its files are on disk, sha256-checked
    failure        the job failed on the service (its error and hint are kept)
    canceled       the job was canceled
    not-submitted  no job was created and nothing was billed (refused, or settled as never created)
    lost           a job we started that the service no longer knows, or cannot be found

Everything else in rodin_nb compares against the sets below, never against raw wire strings.
What a user reads is :func:`describe` (``warming-up`` -> "warming up"), the same in every face.
"""

from __future__ import annotations

import logging
from typing import Literal, cast

__all__ = [
    "ACTIVE",
    "HOLDS_SLOT",
    "ON_SERVICE",
    "REUSABLE",
    "RUNNING",
    "TERMINAL",
    "Status",
    "describe",
    "parse_status",
]

log = logging.getLogger("rodin_nb.status")

Status = Literal[
    "submitting",
    "pending",
    "queued",
    "warming-up",
    "in-progress",
    "finalizing",
    "downloading",
    "success",
    "failure",
    "canceled",
    "not-submitted",
    "lost",
]

# Holding (or about to hold) one of the account's parallel slots on the service.
ON_SERVICE: frozenset[Status] = frozenset({"pending", "queued", "warming-up", "in-progress", "finalizing"})
# Doing work now: progress rises, an end can be predicted.
RUNNING: frozenset[Status] = frozenset({"warming-up", "in-progress", "finalizing"})
# Not ended: someone must keep following it (the engine now, or client.resume() after a restart).
ACTIVE: frozenset[Status] = ON_SERVICE | {"submitting", "downloading"}
# Ended for good: nothing will change it any more.
TERMINAL: frozenset[Status] = frozenset({"success", "failure", "canceled", "not-submitted", "lost"})
# Counted against a sweep's concurrency: being created, or on the service. A run downloading its files,
# or ended in any way (not-submitted included), holds no slot.
HOLDS_SLOT: frozenset[Status] = ON_SERVICE | {"submitting"}
# A row in one of these states stands for a request that is paid for (or being paid for): an identical
# request is answered from it instead of creating another job.
REUSABLE: frozenset[Status] = ACTIVE | {"success"}

# Spellings Scenario's own docs and neighbouring APIs use for the same states (contract §3.2 names the
# eight canonical ones; help pages and Hyper3D's native API use others).
_ALIASES: dict[str, Status] = {
    "succeeded": "success",
    "successful": "success",
    "done": "success",
    "completed": "success",
    "failed": "failure",
    "error": "failure",
    "cancelled": "canceled",
    "processing": "in-progress",
    "running": "in-progress",
    "generating": "in-progress",
    "waiting": "queued",
    "warming_up": "warming-up",
    "in_progress": "in-progress",
}
# What each status reads as in the notebook faces (the run card, the form, HTML reprs): plain words a
# user understands without knowing the wire vocabulary. One table, so every face says the same thing.
_WORDS: dict[Status, str] = {
    "submitting": "submitting",
    "pending": "pending",
    "queued": "queued",
    "warming-up": "warming up",
    "in-progress": "in progress",
    "finalizing": "finalizing",
    "downloading": "downloading files",
    "success": "succeeded",
    "failure": "failed",
    "canceled": "canceled",
    "not-submitted": "not submitted (nothing billed)",
    "lost": "lost (the service no longer knows the job)",
}

_WIRE: frozenset[str] = ON_SERVICE | {"success", "failure", "canceled"}
_unknown_seen: set[str] = set()


def parse_status(value: object, *, current: Status = "pending") -> Status:
    """The service's job status as one of ours.

    Known variants are mapped; an unknown status is logged once and treated as still active (the
    ``current`` status is kept), never as an ending: a new word from the service must not make rodin_nb
    download nothing, or give up on a paid job.
    """
    text = str(value or "").strip().lower()
    if text in _WIRE:
        return cast(Status, text)
    if text in _ALIASES:
        return _ALIASES[text]
    if text not in _unknown_seen:
        _unknown_seen.add(text)
        log.warning("unknown job status %r from the service; treating the job as still running", value)
    return current if current in ON_SERVICE else "pending"


def describe(status: str) -> str:
    """Readable words for a status (``"warming-up"`` -> ``"warming up"``), for display only.

    Anything outside the vocabulary (a row written by a newer version) is shown as it is, dashes spaced.
    """
    return _WORDS.get(cast(Status, status), str(status).replace("-", " ").replace("_", " "))
