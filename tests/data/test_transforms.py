import numpy as np
import pytest
import torch

from vid2vid_fast.data.transforms import (
    FrameParams,
    Vid2VidAugment,
    VideoAugment,
    VideoTransform,
    apply_frame_params,
    apply_frame_params_to_ids,
    apply_video_transform,
    cover_size,
    draw_frame_params,
    draw_video_transform,
)

Image = pytest.importorskip("PIL.Image")


def test_cover_size_keeps_aspect_and_covers_the_target():
    assert cover_size((144, 338), (128, 128)) == (128, 300)  # 338 * 128 / 144 = 300.4
    assert cover_size((720, 1280), (256, 512)) == (288, 512)
    assert cover_size((144, 176), (144, 176)) == (144, 176)
    assert cover_size((100, 100), (64, 32), scale=1.5) == (96, 96)


def test_video_transform_crops_flips_and_normalises():
    frames = torch.arange(2 * 4 * 6 * 3, dtype=torch.uint8).reshape(2, 4, 6, 3)
    augment = VideoAugment((4, 4))  # covering needs no resize: only the width is cropped
    out = apply_video_transform(frames, augment, VideoTransform(1.0, crop_y=0.3, crop_x=1.0, flip=True))
    expected = frames[:, :, 2:6].permute(0, 3, 1, 2).float().flip(-1) / 127.5 - 1
    torch.testing.assert_close(out, expected)


def test_video_transform_draws_within_range():
    generator = torch.Generator().manual_seed(0)
    draws = [draw_video_transform(VideoAugment((32, 32), max_scale=1.5), generator) for _ in range(200)]
    assert all(1.0 <= d.scale <= 1.5 and 0 <= d.crop_x <= 1 and 0 <= d.crop_y <= 1 for d in draws)
    assert 60 < sum(d.flip for d in draws) < 140
    fixed = draw_video_transform(VideoAugment.deterministic((32, 32)), generator)
    assert fixed == VideoTransform(1.0, 0.5, 0.5, False)


def test_vid2vid_scale_width_rounds_to_multiples_of_32():
    params = draw_frame_params(Vid2VidAugment("scale_width", load_size=512), (2048, 1024), train=False)
    assert params == FrameParams((512, 256), None, False)
    params = draw_frame_params(Vid2VidAugment("scale_width", load_size=500), (640, 272), train=False)
    assert params.new_size == (512, 224)  # 500 x 212 rounded to multiples of 32


def test_vid2vid_crop_stays_inside_and_near_the_top():
    augment = Vid2VidAugment("scale_width_and_crop", load_size=512, fine_size=256)
    generator = torch.Generator().manual_seed(0)
    for _ in range(100):
        params = draw_frame_params(augment, (1024, 512), generator=generator)
        left, top, right, bottom = params.crop_box
        assert params.new_size == (512, 256) and (right - left, bottom - top) == (256, 256)
        assert 0 <= left <= 256 and top == 0  # y is drawn from [0, min(256 - 256, 256 // 8)]


def test_evaluation_draws_no_flip_and_a_centred_crop():
    params = draw_frame_params(Vid2VidAugment("resize_and_crop", 300, 256), (640, 480), train=False)
    assert params.crop_box == (22, 0, 278, 256) and not params.flip


def test_nearest_id_resizing_matches_pil_for_8_bit_maps():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 30, size=(37, 53), dtype=np.uint8)
    for size in [(100, 70), (20, 11), (53, 37)]:
        params = FrameParams(size, None, False)
        expected = np.asarray(Image.fromarray(ids).resize(size, Image.Resampling.NEAREST))
        assert (apply_frame_params_to_ids(ids, params) == expected).all()


def test_ids_and_images_get_the_same_crop_and_flip():
    ids = np.arange(8 * 8, dtype=np.uint8).reshape(8, 8)
    params = FrameParams((8, 8), (2, 1, 6, 5), True)
    image = np.asarray(apply_frame_params(Image.fromarray(ids).convert("RGB"), params))[:, :, 0]
    assert (apply_frame_params_to_ids(ids, params) == image).all()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="resize_or_crop"):
        Vid2VidAugment("scaleWidth")
    with pytest.raises(ValueError, match="fine_size"):
        Vid2VidAugment("scale_width_and_crop", load_size=128, fine_size=256)
    with pytest.raises(ValueError, match="max_scale"):
        VideoAugment((32, 32), max_scale=0.5)
