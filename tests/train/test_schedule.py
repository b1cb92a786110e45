import pytest

from vid2vid_fast.train.schedule import Schedule


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
