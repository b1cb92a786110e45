import numpy as np
import pytest
import torch

from vid2vid_fast.data import SequenceTooShortError, Vid2VidAugment, VideoDataError
from vid2vid_fast.data.image_sequence import TemporalDataset, draw_clip, instance_edges

Image = pytest.importorskip("PIL.Image")


def edge_dataset(root, **kwargs):
    kwargs.setdefault("augment", Vid2VidAugment("scale_width_and_crop", load_size=128, fine_size=64))
    return TemporalDataset(root, label_nc=0, input_nc=1, **kwargs)


def test_training_clip_has_n_frames_total_plus_conditioning_frames_in_order(edge_root):
    torch.manual_seed(0)
    dataset = edge_dataset(edge_root, n_frames_total=5, n_frames_G=3, max_t_step=2)
    assert len(dataset) == 2 and dataset.names == ["carphone_pristine", "carphone_short"]
    for index in range(6):
        item = dataset[index]
        indices = item["frame_indices"]
        t_step = indices[1] - indices[0]
        assert len(indices) == 7 and 1 <= t_step <= 2
        assert indices == [indices[0] + i * t_step for i in range(7)] and indices[-1] < (24, 20)[index % 2]
        assert item["A"].shape == (7, 1, 64, 64) and item["B"].shape == (7, 3, 64, 64)
        assert [p.split("/")[-1] for p in item["B_paths"]] == [f"frame_{i:05d}.png" for i in indices]


def test_frames_are_the_files_named_normalised(edge_root):
    dataset = edge_dataset(edge_root, n_frames_total=2, augment=Vid2VidAugment("none", flip=False))
    item = dataset[1]
    for t, path in enumerate(item["B_paths"]):
        image = np.asarray(Image.open(path), np.float32)[:64, :64]  # 'none' rounds 72x88 to 64x96
        resized = np.asarray(Image.open(path).resize((96, 64), Image.Resampling.BICUBIC), np.float32)
        assert torch.allclose(item["B"][t].permute(1, 2, 0), torch.from_numpy(resized / 127.5 - 1), atol=1e-6)
        assert image.shape[-1] == 3
    assert item["B"].min() >= -1 and item["B"].max() <= 1


def test_start_and_t_step_are_drawn_over_their_whole_range():
    generator = torch.Generator().manual_seed(0)
    draws = [
        draw_clip(40, n_frames_total=6, n_frames_G=3, max_t_step=4, generator=generator) for _ in range(2000)
    ]
    assert {d.num_frames for d in draws} == {8}
    assert {d.t_step for d in draws} == {1, 2, 3, 4}
    for d in draws:
        assert 0 <= d.start and d.start + 7 * d.t_step < 40
    assert {d.start for d in draws if d.t_step == 1} == set(range(33))
    # a short sequence limits both the clip and the step: 10 frames hold at most 8 generated + 2
    short = draw_clip(10, n_frames_total=30, n_frames_G=3, max_t_step=4, generator=generator)
    assert (short.num_frames, short.t_step, short.start) == (10, 1, 0)


def test_frames_per_load_rounds_the_clip_like_vid2vid():
    draw = draw_clip(100, n_frames_total=11, n_frames_G=3, max_t_step=1, frames_per_load=4)
    assert draw.num_frames == 4 * 2 + 2


def test_one_augmentation_for_all_frames_of_a_clip(edge_root, tmp_path):
    # a sequence whose frames are copies of one frame: augmented frames must stay identical
    for key in ("train_A", "train_B"):
        (tmp_path / key / "still").mkdir(parents=True)
        source = edge_root / key / "carphone_pristine" / "frame_00007.png"
        for i in range(6):
            (tmp_path / key / "still" / f"{i:03d}.png").write_bytes(source.read_bytes())
    dataset = edge_dataset(
        tmp_path, n_frames_total=4, augment=Vid2VidAugment("random_scale_width_and_crop", 160, 96)
    )
    torch.manual_seed(1)
    firsts = set()
    for _ in range(12):
        item = dataset[0]
        for key in ("A", "B"):
            assert (item[key] == item[key][:1]).all()
        # widths 96..160 at this aspect ratio give heights 78..130: a 64- or 96-row crop
        assert item["B"].shape[-1] == 96 and item["B"].shape[-2] in (64, 96)
        firsts.add(tuple(item["B"][0, 0].flatten()[::53].tolist()))
    assert len(firsts) >= 8  # the draws differ between clips


@pytest.mark.parametrize(
    "mode, load, fine",
    [
        ("scale_width", 200, 200),
        ("scale_width_and_crop", 300, 96),
        ("resize_and_crop", 150, 128),
        ("none", 0, 0),
    ],
)
def test_sizes_are_multiples_of_32(edge_root, mode, load, fine):
    dataset = edge_dataset(edge_root, n_frames_total=1, augment=Vid2VidAugment(mode, load, fine))
    for index in range(2):
        height, width = dataset[index]["B"].shape[-2:]
        assert height % 32 == 0 and width % 32 == 0


def test_labels_are_one_hot_with_instance_edges(label_root):
    dataset = TemporalDataset(
        label_root,
        label_nc=4,
        use_instance=True,
        n_frames_total=2,
        augment=Vid2VidAugment("scale_width_and_crop", 200, 96),
    )
    item = dataset[0]
    labels, edges = item["A"][:, :4], item["A"][:, 4:]
    assert item["A"].shape == (4, 5, 96, 96) and item["inst"].shape == (4, 1, 96, 96)
    assert set(labels.unique().tolist()) == {0.0, 1.0} and (labels.sum(1) == 1).all()
    # nearest resizing keeps instance ids consistent with labels: id // 1000 is the class
    assert (item["inst"][:, 0].long() // 1000 == labels.argmax(1)).all()
    assert set(edges.unique().tolist()) == {0.0, 1.0}
    for t in range(4):
        assert (edges[t] == instance_edges(item["inst"][t, 0].long())).all()


def test_instance_edges_mark_both_sides_of_a_boundary():
    ids = torch.tensor([[1, 1, 2], [1, 1, 2], [3, 3, 3]])
    expected = torch.tensor([[0, 1, 1], [1, 1, 1], [1, 1, 1]], dtype=torch.float32)
    assert (instance_edges(ids)[0] == expected).all()


def test_evaluation_slides_over_every_window(edge_root):
    dataset = edge_dataset(edge_root, n_frames_G=3, train=False)
    assert len(dataset) == (24 - 2) + (20 - 2)
    assert dataset[0]["frame_indices"] == [0, 1, 2] and dataset[22]["frame_indices"] == [0, 1, 2]
    assert dataset[21]["sequence"] == "carphone_pristine" and dataset[21]["frame_indices"] == [21, 22, 23]
    torch.testing.assert_close(dataset[5]["B"], dataset[5]["B"])  # no random draw in evaluation


def test_short_sequences_are_named(edge_root):
    with pytest.raises(SequenceTooShortError, match=r"carphone_short \(20 frames\)"):
        edge_dataset(edge_root, n_frames_G=21)


def test_missing_and_mismatched_folders_are_named(edge_root, tmp_path):
    with pytest.raises(VideoDataError, match=f"{tmp_path / 'train_A'} does not exist"):
        edge_dataset(tmp_path)
    with pytest.raises(VideoDataError, match=f"{edge_root / 'test_A'} does not exist"):
        edge_dataset(edge_root, phase="test")


def test_a_corrupt_frame_is_named(edge_root, tmp_path):
    import shutil

    shutil.copytree(edge_root, tmp_path, dirs_exist_ok=True)
    bad = tmp_path / "train_B" / "carphone_short" / "frame_00000.png"
    bad.write_bytes(bad.read_bytes()[:200])
    dataset = edge_dataset(tmp_path, n_frames_G=20, n_frames_total=1)
    with pytest.raises(VideoDataError, match=f"cannot read frame {bad}"):
        dataset[1]


def test_label_ids_beyond_label_nc_are_named(label_root):
    dataset = TemporalDataset(label_root, label_nc=3, n_frames_total=1, augment=Vid2VidAugment("none"))
    with pytest.raises(
        VideoDataError, match=r"label map .*frame_\d+\.png holds class id 3, outside \[0, label_nc=3\)"
    ):
        dataset[0]
