"""Best-of-N without a run: ranking the candidates, reading failing tests, the budget the attempts share.

Attempts run through the flow are in tests/flow/test_attempts.py.
"""

from __future__ import annotations

from tasks_lib.agent.budget import SharedBudget
from tasks_lib.agent.loop import Limits
from tasks_lib.domain.records import EndReason, Usage
from tasks_lib.session.attempts import Candidate, failing_tests, rank_candidates


def candidate(attempt: int, **fields) -> Candidate:
    base = {"end_reason": "finished", "files": 1, "added": 2, "removed": 0, "steps": 2, "diff_sha": f"d{attempt}"}
    return Candidate(attempt=attempt, **{**base, **fields})


def test_ranking_puts_a_passing_check_first_then_fewer_failures_then_the_majority_then_size_and_steps():
    ranked = rank_candidates(
        [
            candidate(1, check_passed=False, failing_tests=3),
            candidate(2, check_passed=False, failing_tests=1),
            candidate(3, check_passed=True, added=40, steps=9),
        ]
    )
    assert [c.attempt for c in ranked] == [3, 2, 1]
    assert ranked[0].why.startswith("check passed") and "check failed, 1 failing test" in ranked[1].why

    # no check: the change two attempts agree on beats a smaller one made once
    ranked = rank_candidates(
        [candidate(1, added=1), candidate(2, added=9, diff_sha="same"), candidate(3, added=9, diff_sha="same")]
    )
    assert [c.attempt for c in ranked] == [2, 3, 1]
    assert ranked[0].same_as == [3] and "2 of 3 attempts made this same change" in ranked[0].why

    # then the smaller diff, then fewer steps; a loop that broke down and an empty change come last
    ranked = rank_candidates(
        [
            candidate(1, added=5, steps=1),
            candidate(2, added=2, steps=7),
            candidate(3, added=2, steps=3),
            candidate(4, end_reason="model_error", added=0),
            candidate(5, diff_sha="empty", added=0),
        ]
    )
    assert [c.attempt for c in ranked] == [3, 2, 1, 5, 4]
    assert [c.rank for c in ranked] == [1, 2, 3, 4, 5] and "its loop failed (model_error)" in ranked[-1].why


def test_failing_tests_are_read_from_the_usual_runners():
    assert failing_tests("....F.F\n2 failed, 5 passed in 0.12s") == 2
    assert failing_tests("Ran 4 tests\n\nFAILED (failures=1, errors=2)") == 3
    assert failing_tests("Tests:       3 failed, 10 passed, 13 total") == 3
    assert failing_tests("  4 passing\n  1 failing") == 1
    assert failing_tests("exit 1, no idea why") is None


def test_the_shared_budget_never_lets_attempts_together_overshoot_the_steps():
    budget = SharedBudget(Limits(max_steps=3, wall_time_s=None))
    assert budget.stop_reason(1) is None and budget.stop_reason(2) is None  # two steps in flight
    assert budget.stop_reason(3) is None  # the third and last
    reason, detail = budget.stop_reason(4)
    assert reason is EndReason.max_steps and "shared by the attempts" in detail
    budget.report(1, Usage(steps=1))
    budget.report(2, Usage(steps=1))
    assert budget.stop_reason(2)[0] is EndReason.max_steps  # 1 + 1 done, attempt 3's in flight
    green = SharedBudget(Limits(max_steps=50, wall_time_s=None), stop_at_first_green=True)
    green.passed(2)
    assert green.stop_reason(1) == (EndReason.superseded, "attempt 2 passed its check first")
    assert green.stop_reason(2) is None


def test_a_halted_budget_stops_every_attempt_at_its_next_step():
    budget = SharedBudget(Limits(max_steps=50, wall_time_s=None), stop_at_first_green=True)
    assert budget.stop_reason(1) is None
    budget.halt("the run was stopped")
    assert budget.stop_reason(1) == (EndReason.crashed, "the run was stopped")
    assert budget.stop_reason(2) == (EndReason.crashed, "the run was stopped")
