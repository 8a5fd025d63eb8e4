"""rlops_runtime.waiting: one waiter, driven by a stand-in clock."""

from __future__ import annotations

from rlops_runtime.waiting import wait_for


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_first_answer_ends_the_wait() -> None:
    clock, answers = Clock(), iter([None, None, "done"])
    assert wait_for(lambda: next(answers), 10, 1, clock, clock.sleep) == "done"
    assert clock.now == 2


def test_a_false_answer_ends_the_wait_too() -> None:
    clock = Clock()
    assert wait_for(lambda: False, 10, 1, clock, clock.sleep) is False and clock.now == 0


def test_the_deadline_ends_it_with_none_after_asking_at_least_once() -> None:
    clock, asked = Clock(), []
    assert wait_for(lambda: asked.append(clock.now), 3, 1, clock, clock.sleep) is None
    assert asked == [0, 1, 2, 3]
    asked.clear()
    assert wait_for(lambda: asked.append(clock.now), 0, 1, clock, clock.sleep) is None
    assert len(asked) == 1
