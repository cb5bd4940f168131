"""The one status vocabulary: the service's words parsed once, unknown ones never taken for an ending."""

from __future__ import annotations

import logging

import pytest

from rodin_nb.status import ACTIVE, HOLDS_SLOT, REUSABLE, TERMINAL, parse_status


class TestParseStatus:
    @pytest.mark.parametrize(
        ("wire", "ours"),
        [
            ("success", "success"),
            ("succeeded", "success"),
            ("failed", "failure"),
            ("failure", "failure"),
            ("cancelled", "canceled"),
            ("processing", "in-progress"),
            ("IN-PROGRESS", "in-progress"),
            ("warming-up", "warming-up"),
        ],
    )
    def test_known_spellings_map_to_one_word(self, wire: str, ours: str) -> None:
        """Scenario's docs use several spellings; rodin_nb sees one."""
        assert parse_status(wire) == ours

    def test_an_unknown_status_stays_active_and_is_logged_once(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A new word from the service keeps the job followed (never downloaded as a success)."""
        with caplog.at_level(logging.WARNING, logger="rodin_nb.status"):
            assert parse_status("rebalancing", current="in-progress") == "in-progress"
            assert parse_status("rebalancing", current="queued") == "queued"
        assert [r.getMessage() for r in caplog.records].count(
            "unknown job status 'rebalancing' from the service; treating the job as still running"
        ) == 1


class TestTables:
    def test_active_and_terminal_split_every_status(self) -> None:
        """Each status is either followed or ended, never both."""
        assert not ACTIVE & TERMINAL
        assert "downloading" in ACTIVE and "success" in TERMINAL and "not-submitted" in TERMINAL

    def test_a_paid_request_is_reused_and_a_never_created_one_is_not(self) -> None:
        assert {"success", "downloading", "submitting"} <= REUSABLE
        assert not {"not-submitted", "failure", "lost", "canceled"} & REUSABLE

    def test_only_runs_on_the_service_or_being_created_hold_a_slot(self) -> None:
        assert "submitting" in HOLDS_SLOT and "downloading" not in HOLDS_SLOT
        assert not HOLDS_SLOT & TERMINAL
