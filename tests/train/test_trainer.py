import json

import pytest
import torch
from train_helpers import make_sequences, tiny_config

from vid2vid_fast.models.losses import LossTerm
from vid2vid_fast.train.checkpoint import CheckpointError
from vid2vid_fast.train.trainer import NonFiniteLossError, Trainer


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_sequences(tmp_path_factory.mktemp("seqs"))


def states_equal(a: Trainer, b: Trainer):
    sa, sb = a.state(), b.state()
    assert sa["progress"] == sb["progress"]
    for group in ("models", "optimizers"):
        flat_a, flat_b = _flatten(sa[group]), _flatten(sb[group])
        assert flat_a.keys() == flat_b.keys()
        for key in flat_a:
            if isinstance(flat_a[key], torch.Tensor):
                assert torch.equal(flat_a[key], flat_b[key]), f"{group} {key} differs"
            else:
                assert flat_a[key] == flat_b[key], f"{group} {key} differs"


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}/{k}"))
        return out
    if isinstance(tree, list):
        out = {}
        for i, v in enumerate(tree):
            out.update(_flatten(v, f"{prefix}/{i}"))
        return out
    return {prefix: tree}


def test_resume_is_bit_exact(data, tmp_path):
    # 4 chunks per clip in epoch 1, 7 in epoch 2 (n_frames_total doubles, capped by the 9-frame clips):
    # stop mid-clip (5) and continue across the epoch boundary to 13
    full = Trainer(tiny_config(data, tmp_path / "a", schedule={"max_iters": 13}))
    full.train()
    part = Trainer(tiny_config(data, tmp_path / "b", schedule={"max_iters": 5}))
    part.train()
    assert part.chunk == 1 and part.position == 1 and part.carry is not None
    resumed = Trainer(tiny_config(data, tmp_path / "b", schedule={"max_iters": 13}), resume=part.checkpoint_path)
    assert resumed.iteration == 5
    resumed.train()
    assert full.iteration == resumed.iteration == 13 and full.epoch == resumed.epoch == 2
    states_equal(full, resumed)
    # the schedule: the last epoch (niter + niter_decay) trains at lr / niter_decay; clips doubled
    assert resumed.opt_G.param_groups[0]["lr"] == full.schedule.lr_at(2) == pytest.approx(2e-4)
    assert resumed.source.dataset.n_frames_total == 8


def test_every_network_trains(data, tmp_path):
    trainer = Trainer(tiny_config(data, tmp_path, schedule={"max_iters": 4}))
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in
              [("G", trainer.G), ("D", trainer.D), ("D_T0", trainer.D_T.scales[0]), ("D_T1", trainer.D_T.scales[1])]}
    trainer.train()
    after = {"G": trainer.G, "D": trainer.D, "D_T0": trainer.D_T.scales[0], "D_T1": trainer.D_T.scales[1]}
    for name, params in before.items():
        changed = sum(not torch.equal(p0, p1) for p0, p1 in zip(params, after[name].parameters()))
        assert changed == len(params), f"{name}: {changed} of {len(params)} parameters changed"
    assert trainer.summary()["iterations"] == 4


def test_total_iterations_matches_the_run(data, tmp_path):
    trainer = Trainer(tiny_config(data, tmp_path, schedule={"max_frames_per_gpu": 2}))
    expected = trainer.total_iterations()
    trainer.train()
    assert trainer.iteration == expected == 2 * 2 + 2 * 3  # epoch 1: 4 frames / 2; epoch 2: 6 of 7 frames / 2


def test_nan_stops_the_run(data, tmp_path):
    trainer = Trainer(tiny_config(data, tmp_path, schedule={"lr": 1e30, "max_iters": 50}))
    with pytest.raises(NonFiniteLossError, match=r"non-finite losses.*Try a lower learning rate"):
        trainer.train()
    assert trainer.iteration < 50
    assert not trainer.checkpoint_path.exists()


def test_no_first_img_and_speed_switches_run(data, tmp_path):
    config = tiny_config(data, tmp_path, model={"no_first_img": True},
                         speed={"amp": "bf16", "channels_last": "on", "backend": "reference"},
                         schedule={"max_iters": 3})
    trainer = Trainer(config)
    assert trainer.speed.amp == "bf16" and trainer.speed.channels_last
    trainer.train()
    assert trainer.iteration == 3


def test_resume_refuses_another_architecture(data, tmp_path):
    trainer = Trainer(tiny_config(data, tmp_path, schedule={"max_iters": 1}))
    trainer.train()
    with pytest.raises(CheckpointError, match="model.ngf: checkpoint 4, run 8"):
        Trainer(tiny_config(data, tmp_path, model={"ngf": 8}), resume=trainer.checkpoint_path)


class ExtraLossTrainer(Trainer):
    """Adds a term named outside the G_/F_/W prefixes the generator's total used to be chosen by."""

    def chunk_losses(self, chunk):
        losses = super().chunk_losses(chunk)
        losses.add("Sharpness", chunk.fake.abs().mean())
        return losses


def test_a_registered_loss_lands_in_its_owners_total(data, tmp_path):
    trainer = ExtraLossTrainer(tiny_config(data, tmp_path, schedule={"max_iters": 1}, run={"print_freq": 1}))
    with pytest.raises(KeyError, match="'Sharpness' is not registered"):
        trainer.train()
    trainer = ExtraLossTrainer(tiny_config(data, tmp_path / "b", schedule={"max_iters": 1}, run={"print_freq": 1}))
    trainer.loss_terms["Sharpness"] = LossTerm("G", 3.0)
    trainer.train()
    values = json.loads((trainer.run_dir / "losses.jsonl").read_text().splitlines()[0])
    generator_terms = [v for k, v in values.items() if trainer.loss_terms.get(k, LossTerm("", 0)).owner == "G"]
    assert values["Sharpness"] > 0
    assert values["G_total"] == pytest.approx(sum(generator_terms), rel=1e-6)
    assert values["D_total"] == pytest.approx(values["D_real"] + values["D_fake"], rel=1e-6)
