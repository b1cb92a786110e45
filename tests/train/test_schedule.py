import pytest

from vid2vid_fast.train.schedule import BUDGET_SAFETY, IterationBudget, Schedule


def test_lr_constant_then_linear_decay():
    s = Schedule(lr=1.0, niter=2, niter_decay=4)
    assert [s.lr_at(e) for e in range(1, 7)] == pytest.approx([1.0, 1.0, 1.0, 0.75, 0.5, 0.25])
    with pytest.raises(ValueError, match="epoch must be in"):
        s.lr_at(7)


def test_n_frames_total_doubles_every_niter_step_and_is_capped():
    s = Schedule(niter=10, niter_decay=10, n_frames_total=6, niter_step=5)
    assert [s.n_frames_total_at(e) for e in (1, 5, 6, 10, 11, 16, 20)] == [6, 6, 12, 12, 24, 48, 48]
    capped = Schedule(niter=10, niter_decay=10, n_frames_total=6, niter_step=5, max_frames_total=20)
    assert [capped.n_frames_total_at(e) for e in (1, 6, 11)] == [6, 12, 20]


def test_niter_fix_global():
    s = Schedule(niter_fix_global=2, n_scales_spatial=2)
    assert [s.train_all_scales_at(e) for e in (1, 2, 3)] == [False, False, True]
    assert Schedule(niter_fix_global=2, n_scales_spatial=1).train_all_scales_at(1)


def test_bad_schedule():
    with pytest.raises(ValueError, match="niter"):
        Schedule(niter=0, niter_decay=0)


def test_budget_fits_the_time_left_and_spreads_the_schedule():
    # 5 minutes, 20 s spent measuring, 0.25 s / iteration: 280 s * 0.95 / 0.25 = 1064 iterations; the
    # schedule takes 1792 with 16 clips per epoch, so epochs of ceil(1064 * 16 / 1792) = 10 clips
    budget = IterationBudget.fit(5, 20.0, 0.25, epoch_length=16, schedule_iterations=1792)
    assert (budget.iterations, budget.epoch_length) == (1064, 10)
    assert budget.iterations * BUDGET_SAFETY < 1064 < 280 / 0.25
    capped = IterationBudget.fit(5, 20.0, 0.25, epoch_length=16, schedule_iterations=1792, max_iters=500)
    assert (capped.iterations, capped.epoch_length) == (500, 5)
    longer = IterationBudget.fit(60, 20.0, 0.25, epoch_length=16, schedule_iterations=1792)
    assert longer.epoch_length > 16  # a longer budget lengthens the epochs
    late = IterationBudget.fit(1, 90.0, 0.25, epoch_length=16, schedule_iterations=1792)
    assert (late.iterations, late.epoch_length) == (1, 1)  # out of time: one iteration, not none
    with pytest.raises(ValueError, match="a budget needs"):
        IterationBudget.fit(5, 0.0, 0.0, epoch_length=16, schedule_iterations=1792)
