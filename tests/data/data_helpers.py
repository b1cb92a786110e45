"""Helpers shared by the data tests (a module of its own: `conftest` is ambiguous across test folders)."""

import numpy as np

CLIP_FRAMES = 48  # frames per prepared test clip: short clips keep the suite fast on two cores


def decode_all(path) -> np.ndarray:
    """Every frame of a file, decoded front to back with PyAV: uint8 (N, H, W, 3)."""
    import av

    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def psnr(a, b, peak=255.0) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def truncated_copy(path, folder):
    data = path.read_bytes()
    out = folder / f"truncated{path.suffix}"
    out.write_bytes(data[: len(data) // 2])
    return out


def corrupt_copy(path, folder):
    """The file with its container header overwritten by zeros."""
    data = bytearray(path.read_bytes())
    data[:4096] = bytes(4096)
    out = folder / f"corrupt{path.suffix}"
    out.write_bytes(bytes(data))
    return out
