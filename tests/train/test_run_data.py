import torch
from train_helpers import make_sequences, tiny_config

from vid2vid_fast.data.image_sequence import list_sequences
from vid2vid_fast.train.data import EpochOrder, SeededClips, load_sequence, make_dataset, split_held_out


def test_split_held_out(tmp_path, monkeypatch):
    monkeypatch.setenv("VID2VID_FAST_CACHE", str(tmp_path / "cache"))
    root = make_sequences(tmp_path / "data", frames=10)
    split, train, test = split_held_out(root, "train", held_out=3, n_frames_G=3)
    train_frames = list_sequences(split / "train_B")["seq0"]
    test_frames = list_sequences(split / "test_A")["seq0"]
    assert [p.name for p in train_frames] == [f"{i:04d}.png" for i in range(7)]
    assert [p.name for p in test_frames] == [f"{i:04d}.png" for i in range(5, 10)]  # 2 frames of context
    assert test_frames[0].resolve() == (root / "train_A" / "seq0" / "0005.png").resolve()
    marker = (split / ".complete.json").stat().st_mtime_ns
    assert split_held_out(root, "train", held_out=3, n_frames_G=3)[0] == split
    assert (split / ".complete.json").stat().st_mtime_ns == marker  # reused, not rebuilt


def test_epoch_order_splits_ranks_and_reshuffles():
    ranks = [EpochOrder(5, 10, seed=1, rank=r, world_size=3) for r in range(3)]
    assert all(len(o) == 3 for o in ranks)
    clips = [o.clips(1) for o in ranks]
    seeds = [seed for c in clips for _, seed in c]
    assert len(set(seeds)) == 9  # disjoint positions
    assert clips[0] == ranks[0].clips(1) and clips[0] != ranks[0].clips(2)


def test_seeded_clips_are_reproducible_and_leave_the_global_rng_alone(tmp_path):
    root = make_sequences(tmp_path / "data", frames=10)
    config = tiny_config(root, tmp_path, data={"max_t_step": 3, "resize_or_crop": "random_scale_width_and_crop",
                                               "load_size": 48, "fine_size": 32})
    clips = SeededClips(make_dataset(config, root, "train"))
    state = torch.get_rng_state()
    a, b, c = clips[(0, 123)], clips[(0, 123)], clips[(0, 124)]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a["B"], b["B"]) and a["frame_indices"] == b["frame_indices"]
    assert not (torch.equal(a["B"], c["B"]) and a["frame_indices"] == c["frame_indices"])
    whole = load_sequence(clips.dataset, 1)
    assert whole["A"].shape[0] == whole["B"].shape[0] == 10 and whole["name"] == "seq1"
