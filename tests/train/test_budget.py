"""A run with a wall-clock budget (max_minutes): the iteration count and epoch length it fixes after
measuring are what a plain run with that epoch length and max_iters would train, bit for bit, and a
resumed run continues the same schedule."""

import signal

import pytest
from test_trainer import states_equal
from train_helpers import make_sequences, tiny_config

from vid2vid_fast.train.config import ConfigError
from vid2vid_fast.train.trainer import Trainer, TrainingInterrupted

# 4 epochs of 4 clips: 4 + 7 + 7 + 7 chunks per clip (n_frames_total doubles, capped by the 9-frame
# clips) = 100 iterations. A budget capped at 12 iterations spreads the 4 epochs over 12.
SCHEDULE = {"niter": 2, "niter_decay": 2, "epoch_length": 4}
ITERATIONS = 12


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_sequences(tmp_path_factory.mktemp("seqs"))


def budget_config(data, out, **schedule):
    # half a minute fits far more than 12 tiny iterations, so max_iters decides the count
    return tiny_config(data, out, schedule={**SCHEDULE, "max_minutes": 0.5, "max_iters": ITERATIONS, **schedule})


class StopAt(Trainer):
    """Gets a SIGTERM (as from the signal handler) after ``stop_at`` iterations of the budgeted run."""

    stop_at = 5

    def timed_chunk(self, *args):
        result = super().timed_chunk(*args)
        if self.budget is not None and self.iteration + 1 == self.stop_at:
            self._stop_signal = signal.SIGTERM
        return result


def test_budget_fixes_the_schedule_and_resume_keeps_it(data, tmp_path):
    budgeted = Trainer(budget_config(data, tmp_path / "budget"))
    assert budgeted.schedule_iterations() == 100  # before measuring: the configured schedule
    budgeted.train()
    budget = budgeted.budget
    assert budget.iterations == ITERATIONS and budget.epoch_length == 1  # ceil(12 * 4 / 100)
    assert budget.seconds_per_iteration > 0 and budgeted.iteration == ITERATIONS
    assert budgeted.epoch == 3  # 4 + 7 iterations in epochs 1 and 2: the schedule moved on

    # the measuring iterations left no trace: the same as a plain run of that schedule
    plain = Trainer(tiny_config(data, tmp_path / "plain", schedule={**SCHEDULE, "epoch_length": 1, "max_iters": ITERATIONS}))
    plain.train()
    states_equal(budgeted, plain)

    part = StopAt(budget_config(data, tmp_path / "part"))
    with pytest.raises(TrainingInterrupted):
        part.train()
    assert part.iteration == StopAt.stop_at
    # resumed with another budget on the command line: the recorded schedule wins, nothing is measured again
    resumed = Trainer(budget_config(data, tmp_path / "part", max_minutes=0.01), resume=part.checkpoint_path)
    assert resumed.budget == part.budget and resumed.total_iterations() == ITERATIONS
    resumed.train()
    assert resumed.iteration == ITERATIONS and resumed.compile_seconds == 0
    states_equal(resumed, plain)


def test_a_budget_cannot_start_in_the_middle_of_a_run(data, tmp_path):
    plain = Trainer(tiny_config(data, tmp_path, schedule={"max_iters": 2}))
    plain.train()
    resumed = Trainer(tiny_config(data, tmp_path, schedule={"max_minutes": 1.0}), resume=plain.checkpoint_path)
    with pytest.raises(ConfigError, match="resumed at iteration 2 from a checkpoint without one"):
        resumed.train()
