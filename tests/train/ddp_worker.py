"""Run by test_ddp.py under torchrun (2 CPU processes, gloo): trains a few iterations and checks that the
ranks, which read different clips, end with identical weights."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import tiny_config  # noqa: E402

from vid2vid_fast.train.distributed import shutdown_distributed  # noqa: E402
from vid2vid_fast.train.trainer import Trainer  # noqa: E402


def main(data, out):
    trainer = Trainer(tiny_config(data, out, schedule={"max_iters": 4}))
    assert trainer.dist.world_size == 2, "run under torchrun --nproc_per_node 2"
    clips = trainer.source.order.clips(1)
    trainer.train()
    params = torch.cat([p.detach().flatten() for m in (trainer.G, trainer.D, trainer.D_T) for p in m.parameters()])
    gathered = [torch.zeros_like(params) for _ in range(2)]
    dist.all_gather(gathered, params)
    all_clips = [None, None]
    dist.all_gather_object(all_clips, clips)
    if trainer.dist.is_main:
        result = {
            "same_weights": torch.equal(gathered[0], gathered[1]),
            "clips": all_clips,
            "iteration": trainer.iteration,
            "checkpoint": str(trainer.checkpoint_path),
        }
        (Path(out) / "ddp_result.json").write_text(json.dumps(result))
    shutdown_distributed(trainer.dist)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
