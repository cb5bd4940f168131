"""Batch status: one ``GET /v1/jobs`` page reports every followed job that changed, instead of one
``GET /v1/jobs/{jobId}`` per job.

The engine (:mod:`rodin_nb.engine`) still decides *when* to look (each job's predicted finish); when
several jobs are in flight, a look is one list request filtered to ``type=custom`` and
``updatedAfter`` (the service then sorts by update date, contract §3.3), so only jobs changed since
the engine last knew them come back. A job left out of such a list has not changed.

What this module keeps is the list's side of that bargain:

- the moment to ask from (:func:`since`): the oldest moment up to which every followed job is known,
  less a margin for a lagging replica, so no change can fall between two looks;
- whether an item says everything (:func:`whole`): the contract shows list items as whole Job objects,
  but an abbreviated item (no ``progress``, ``statusHistory`` or ``metadata.assetIds``) is read as a
  change signal only, and the engine then asks for that job itself;
- whether the list can be trusted (:class:`JobLister`): a list that fails is rested for a while (the
  engine polls each job meanwhile), one the service refuses (400, 404) is given up for the session,
  and one caught missing a change (a job's own answer shows a change the list should have reported)
  is rested too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .api import ScenarioAPI, job_id_of, parse_time
from .errors import BadRequestError, NotFoundError, PermissionDeniedError

__all__ = ["JobLister", "ListLook", "since", "updated_at", "whole"]

log = logging.getLogger("rodin_nb.batchpoll")

# A replica may publish a change a little after its updatedAt: each look reaches this far back over
# what the previous one already covered (re-reading a few jobs costs nothing; missing one costs a
# detection).
MARGIN = timedelta(seconds=2)
MAX_PAGES = 5  # 500 jobs; a longer answer is cut short, and the jobs it did not reach are asked one by one


@dataclass
class ListLook:
    """One list look: the followed-or-not jobs it reported, by id, and how far it can be trusted."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    complete: bool = True  # every page was read
    # The latest updatedAt on the first page: every change up to it was visible to this look.
    high_water: datetime | None = None


def updated_at(job: Mapping[str, Any]) -> datetime | None:
    return parse_time(job.get("updatedAt"))


def whole(job: Mapping[str, Any]) -> bool:
    """True when a list item carries what a status look needs (else it only says the job changed)."""
    metadata = job.get("metadata")
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("assetIds"), list):
        return False
    if job.get("status") == "success" and not metadata["assetIds"]:
        return False  # a list that lags on (or leaves out) the results: the job's own answer has them
    return isinstance(job.get("progress"), (int, float)) and isinstance(job.get("statusHistory"), list)


def since(known_until: Iterable[datetime]) -> datetime | None:
    """Where the next look starts: before the oldest moment up to which a followed job is known."""
    moments = list(known_until)
    return min(moments) - MARGIN if moments else None


class JobLister:
    """Reads the job list for the engine and keeps track of whether it may be used."""

    def __init__(self, api: ScenarioAPI, *, rest_s: float) -> None:
        self.api = api
        self.rest_s = rest_s  # the first pause after a failed or stale list (it doubles, up to 8x)
        self._lock = threading.Lock()
        self._resting_until = 0.0
        self._failures = 0
        self.given_up: str | None = None  # why the list is not used any more (this session)
        self.last_rest: str | None = None  # why the list was last rested (for logs and tests)

    def usable(self) -> bool:
        with self._lock:
            return self.given_up is None and time.monotonic() >= self._resting_until

    def look(self, after: datetime | None) -> ListLook:
        """Jobs changed after ``after`` (all jobs of the type when None), every page up to MAX_PAGES.

        Raises the API's error; a refusal of the request itself gives the list up for the session.
        """
        out = ListLook()
        token: str | None = None
        try:
            for page in range(MAX_PAGES):
                jobs, token = self.api.list_jobs_page(updated_after=after, token=token)
                for job in jobs:
                    try:
                        out.jobs.setdefault(job_id_of(job), job)
                    except ValueError:
                        continue
                if page == 0:
                    stamps = [stamp for stamp in map(updated_at, jobs) if stamp is not None]
                    out.high_water = max(stamps) if stamps else None
                if not token:
                    break
            else:
                out.complete = False
        except (BadRequestError, NotFoundError, PermissionDeniedError) as exc:
            self.give_up(f"the service refused the filtered job list ({exc})")
            raise
        except Exception:
            self.rest("the job list failed")
            raise
        with self._lock:
            self._failures = 0
        return out

    def rest(self, why: str) -> None:
        """Stop using the list for a while (longer after each failure in a row)."""
        with self._lock:
            pause = self.rest_s * min(8, 2**self._failures)
            self._failures += 1
            self._resting_until = time.monotonic() + pause
            self.last_rest = why
        log.info("%s: following each job on its own for %.1f s", why, pause)

    def give_up(self, why: str) -> None:
        with self._lock:
            if self.given_up is None:
                self.given_up = why
                log.warning("%s; following each job on its own from now on", why)
