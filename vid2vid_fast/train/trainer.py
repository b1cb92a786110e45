"""The vid2vid training loop, faithful to the original's schedule (NVIDIA/vid2vid train.py):

- each clip (``n_frames_total`` generated frames plus ``n_frames_G - 1`` frames of context) is walked in
  chunks of ``max_frames_per_gpu`` frames; one chunk is one iteration;
- the generator makes the chunk's frames one by one, each conditioned on the labels of the last
  ``n_frames_G`` frames and on the ``n_frames_G - 1`` frames before it: the real ones at the start of
  a clip (or nothing, with ``no_first_img``), then its own outputs, detached between chunks;
- ground-truth flow and its confidence come from the flow source, on the real frames;
- the image discriminator sees (label, frame) pairs of the final and the raw images; each temporal
  discriminator sees ``n_frames_D`` frames at stride ``n_frames_D ** s`` with the real flows between them,
  drawn from the frames generated so far in the clip;
- G, D and each temporal D take separate Adam steps, in that order; the learning rate, the clip length
  and niter_fix_global follow ``Schedule``.

Distributed runs (torchrun) wrap each trained network in DistributedDataParallel. The original runs each
discriminator twice on generated frames: on the detached frames for its own loss, and for the generator's
terms with its parameters frozen, through the unwrapped module, so that each DDP module sees exactly one
backward per iteration. The fast configuration (``shared_d_forwards``) runs it once for both, and each
owner's backward pass keeps the shared graph for the next owner; as every owner's backward pass takes only
its own network's parameters, each DDP module's parameters still get their gradients from one of them.
"""

import copy
import dataclasses
import functools
import json
import logging
import math
import signal
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from vid2vid_fast.models import MultiscaleDiscriminator, TemporalDiscriminators, Vid2VidGenerator
from vid2vid_fast.models.flow_source import make_flow_source
from vid2vid_fast.models.losses import (
    LossTotals,
    LossWeights,
    VGGLoss,
    discriminator_loss,
    feature_matching_loss,
    flow_loss,
    flow_warp_loss,
    gan_loss,
    loss_terms,
    temporal_consistency_loss,
    weight_loss,
)

from . import checkpoint as ckpt
from . import run_folder
from .adam import make_adam
from .config import Config, ConfigError, save_yaml, to_dict
from .data import FrameSource, label_channels, prepare_data
from .distributed import DistInfo, any_rank, barrier, broadcast_object, gather_objects, init_distributed, min_over_ranks
from .schedule import IterationBudget, Schedule
from .speed import Speed, compiled_graphs, resolve_device, resolve_speed
from .video_source import VideoSource, prepare_videos

log = logging.getLogger("vid2vid_fast.train")

# With fp16 the GradScaler skips steps whose gradients overflow and lowers its scale; losses that stay
# non-finite for this many iterations in a row are not an overflow it can fix.
FP16_NONFINITE_PATIENCE = 8

# The speed a max_minutes budget is fitted with is the median over at least this many iterations (after
# any compilation) and this share of the budget: on a shared machine a few seconds can be far from
# typical, and the measured iterations are not kept (the schedule starts over once it is fixed).
BUDGET_MEASURED_ITERATIONS = 8
BUDGET_MEASURED_SHARE = 0.03


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM arrived; a checkpoint was written before this was raised."""

    def __init__(self, signum: int, checkpoint_path: Path, iteration: int):
        self.signum, self.checkpoint_path, self.iteration = signum, checkpoint_path, iteration
        super().__init__(
            f"training interrupted by {signal.Signals(signum).name} at iteration {iteration}; "
            f"checkpoint written to {checkpoint_path}"
        )


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or Inf; the run stops without overwriting its last checkpoint."""


def build_generator(config: Config, backend: str = "auto", heads: str = "apart") -> Vid2VidGenerator:
    m = config.model
    return Vid2VidGenerator(
        label_channels(config),
        output_nc=m.output_nc,
        n_frames_G=m.n_frames_G,
        ngf=m.ngf,
        n_downsampling=m.n_downsample_G,
        n_blocks=m.n_blocks,
        n_blocks_local=m.n_blocks_local,
        n_scales_spatial=m.n_scales_spatial,
        norm=m.norm,
        use_fg_model=m.fg,
        fg_labels=tuple(m.fg_labels),
        backend=backend,
        heads=heads,
    )


def build_discriminators(config: Config) -> tuple[MultiscaleDiscriminator, TemporalDiscriminators]:
    m = config.model
    image_d = MultiscaleDiscriminator(label_channels(config) + m.output_nc, m.ndf, m.n_layers_D, m.norm, m.num_D)
    temporal_d = TemporalDiscriminators(m.output_nc, m.n_frames_D, m.n_scales_temporal, m.ndf, m.n_layers_D, m.norm, m.num_D)
    return image_d, temporal_d


@contextmanager
def frozen(module: torch.nn.Module):
    """Parameters of ``module`` need no gradient inside the block: the generator's adversarial terms
    go through the discriminators without computing their weight gradients (their own step uses a
    separate pass)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@dataclass
class Carry:
    """What one chunk hands to the next within a clip: the generator's previous frames (one tensor per
    spatial scale, finest first, B x (n_frames_G - 1)·C x h x w, detached) and the recent real / fake
    frames and real flows the temporal discriminators sample from (B x T x C x H x W)."""

    prev: list | None
    first_frame: bool
    history: dict = field(default_factory=dict)

    def state(self) -> dict:
        return {
            "prev": None if self.prev is None else [p.cpu() for p in self.prev],
            "first_frame": self.first_frame,
            "history": {k: v.cpu() for k, v in self.history.items()},
        }

    @classmethod
    def from_state(cls, state: dict, device) -> "Carry":
        prev = None if state["prev"] is None else [p.to(device) for p in state["prev"]]
        return cls(prev, state["first_frame"], {k: v.to(device) for k, v in state["history"].items()})


@dataclass
class ChunkForward:
    """One chunk's forward pass: the generator's outputs per frame, the carry for the next chunk, the
    real frames and ground-truth flow (B x n x ...), and the same laid out (B·n) x ... frame-major for
    the losses (in the run's memory format)."""

    outputs: list
    carry: Carry
    real: torch.Tensor
    flow_gt: torch.Tensor
    fake: torch.Tensor
    raw: torch.Tensor
    fake_prev: torch.Tensor  # the previous frame each was composited onto (detached)
    labels: torch.Tensor
    real_f: torch.Tensor
    real_prev_f: torch.Tensor
    flow_gt_f: torch.Tensor
    conf_f: torch.Tensor


class Trainer:
    """One training run. ``Trainer(config).train()`` runs the whole schedule (or ``max_iters``);
    ``resume`` names a checkpoint (or run folder) to continue from.

    The run writes to the folder of the checkpoint it resumes, else to ``<output_dir>/<name>`` or, when
    that holds another run's checkpoint, the first free ``<name>-N`` (see ``run_folder``); ``config``
    then names that folder."""

    def __init__(self, config: Config, resume=None, progress: bool | None = None):
        self.config = config
        if config.run.num_threads:
            torch.set_num_threads(config.run.num_threads)
        device = resolve_device(config.run.device)
        self.dist: DistInfo = init_distributed(device.type)
        if device.type == "cuda":
            device = torch.device("cuda", self.dist.local_rank if self.dist.enabled else torch.cuda.current_device())
        self.device = device
        self.speed: Speed = resolve_speed(config.speed, device)
        # before any data preparation or model building: a bad folder fails at once
        self.run_dir = self._open_run_dir(resume)
        self.config = config = run_folder.with_run_dir(config, self.run_dir)
        self.checkpoint_path = run_folder.checkpoint_in(self.run_dir)
        self.show_progress = (config.run.progress if progress is None else progress) and self.dist.is_main
        self.schedule = Schedule.from_config(config)
        weights = LossWeights(config.loss.lambda_feat, config.loss.lambda_T, config.loss.lambda_F)
        self.loss_terms = loss_terms(weights, config.model.n_scales_spatial, config.model.n_scales_temporal)

        # rank 0 builds the data set (once, cached); the others wait and then find it built
        if self.dist.is_main:
            self.source = self._make_source(progress=self.show_progress)
        barrier(self.dist)
        if not self.dist.is_main:
            self.source = self._make_source(progress=False)

        # identical initial weights on every rank (DDP also broadcasts rank 0's)
        torch.manual_seed(config.run.seed)
        self.G = build_generator(config, self.speed.backend, self.speed.heads).to(
            device, memory_format=self.speed.memory_format)
        self.D, self.D_T = build_discriminators(config)
        self.D = self.D.to(device, memory_format=self.speed.memory_format)
        self.D_T = self.D_T.to(device, memory_format=self.speed.memory_format)
        torch.manual_seed(config.run.seed + 7919 * (self.dist.rank + 1))
        self.flow_source = make_flow_source(config.loss.flow_source, config.loss.flow_checkpoint or None).to(device)
        self.vgg = VGGLoss(config.loss.vgg_weights or None).to(device)

        s = config.schedule
        adam = functools.partial(make_adam, implementation=self.speed.adam, device=device,
                                 grad_scaling=self.speed.amp == "fp16", lr=s.lr, betas=(s.beta1, s.beta2))
        # the network and the optimizer of each loss owner (models/losses.py, loss_terms), in the order they step
        self.networks = {"G": self.G, "D": self.D, **{f"D_T_{s}": d for s, d in enumerate(self.D_T.scales)}}
        self.optimizers = {owner: adam(network.parameters()) for owner, network in self.networks.items()}
        self.opt_G = self.optimizers["G"]
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.speed.amp == "fp16")

        self.epoch, self.position, self.chunk, self.iteration = 1, 0, 0, 0
        self.carry: Carry | None = None
        self.nonfinite_streak = 0
        self.iteration_times: list[float] = []
        self.compile_seconds = 0.0  # iterations in which torch.compile compiled, kept out of iteration_times
        self.budget: IterationBudget | None = None
        self._wrapped_for = None
        self._stop_signal = None
        if resume is not None:
            self.load(resume)
        if self.dist.is_main:
            run_folder.tidy(self.run_dir, self.iteration)
        self.tensorboard = self._open_tensorboard()

    def _open_run_dir(self, resume) -> Path:
        """Rank 0 picks and checks the run folder; every rank gets its answer, or its error."""
        answer = None
        if self.dist.is_main:
            try:
                answer = run_folder.open_run_dir(self.config.run.output_dir, self.config.run.name, resume)
            except run_folder.RunFolderError as error:
                answer = error
        answer = broadcast_object(self.dist, answer)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def _make_source(self, progress: bool):
        config = self.config
        if config.data.source == "videos":
            videos = prepare_videos(config, progress=progress)
            return VideoSource(config, videos, self.speed.loader, self.device, self.dist.rank, self.dist.world_size)
        root, train_phase, _ = prepare_data(config, progress=progress)
        return FrameSource(config, root, train_phase, self.dist.rank, self.dist.world_size)

    # ------------------------------------------------------------------ models in their training form

    def _wrap_models(self):
        """DDP and torch.compile wrappers, rebuilt when the set of trained generator parameters changes
        (niter_fix_global), because DDP registers its hooks on the parameters that require gradients."""
        key = self.G.coarse_frozen
        if self._wrapped_for == key:
            return
        self._wrapped_for = key

        def ddp(module, find_unused=False):
            if not self.dist.enabled:
                return module
            ids = [self.device.index] if self.device.type == "cuda" else None
            return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)

        def compiled(module):
            return torch.compile(module) if self.speed.compile else module

        # with no_first_img the first frame of a clip skips the flow branch
        self.G_train = compiled(ddp(self.G, find_unused=self.config.model.no_first_img))
        self.D_train = compiled(ddp(self.D))
        self.D_T_train = [compiled(ddp(d)) for d in self.D_T.scales]
        # the generator's adversarial terms go through the plain modules (frozen during that pass)
        self.D_for_G = compiled(self.D)
        self.D_T_for_G = [compiled(d) for d in self.D_T.scales]

    def _set_epoch(self, epoch: int):
        lr = self.schedule.lr_at(epoch)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr
        self.G.freeze_coarse_scales(not self.schedule.train_all_scales_at(epoch))
        self._wrap_models()

    # ------------------------------------------------------------------ one iteration

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True)

    def _fmt(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=self.speed.memory_format) if self.speed.channels_last else x

    def start_carry(self, B: torch.Tensor) -> Carry:
        m = self.config.model
        batch, _, c, h, w = B.shape
        if m.no_first_img:
            return Carry(None, True)
        real_prev = B[:, : m.n_frames_G - 1].reshape(batch, (m.n_frames_G - 1) * c, h, w)
        return Carry([self._fmt(p) for p in self.G.pyramid(real_prev)], False)

    def generate_chunk(self, A: torch.Tensor, frames: list[int], carry: Carry):
        """Run G over ``frames`` (absolute indices into the clip). Returns per-frame outputs, the previous
        frame each was composited onto (detached; for the temporal-consistency loss), and the updated
        carry."""
        m = self.config.model
        tG, out_nc = m.n_frames_G, m.output_nc
        outputs, fake_prev = [], []
        prev, first = carry.prev, carry.first_frame
        for f in frames:
            labels = self._fmt(A[:, f - tG + 1 : f + 1].flatten(1, 2))
            out = self.G_train(labels, None if first else prev)
            if first:
                batch, _, h, w = labels.shape
                prev = [self._fmt(p) for p in self.G.pyramid(labels.new_zeros(batch, (tG - 1) * out_nc, h, w))]
                fake_prev.append(None)
            else:
                fake_prev.append(prev[0][:, -out_nc:].detach())
            pyramid = out.img_final_pyramid or (out.img_final,)
            prev = [torch.cat([p[:, out_nc:], new], dim=1) for p, new in zip(prev, pyramid)]
            outputs.append(out)
            first = False
        return outputs, fake_prev, Carry([p.detach() for p in prev], first, carry.history)

    def train_chunk(self, A: torch.Tensor, B: torch.Tensor, frames: list[int], carry: Carry):
        """One iteration: forward, losses, and the G, D and temporal-D steps. Returns the losses as floats,
        the carry for the next chunk and the generated frames ((B·n) x C x H x W, detached)."""
        chunk = self.forward_chunk(A, B, frames, carry)
        with self.speed.autocast(self.device):
            losses = self.chunk_losses(chunk)
        totals = {owner: losses.total(owner) for owner in losses.owners()}
        values = self._loss_values(losses, totals)
        self._check_finite(values)
        self.optimizer_steps(totals)
        return values, chunk.carry, chunk.fake.detach()

    def forward_chunk(self, A: torch.Tensor, B: torch.Tensor, frames: list[int], carry: Carry) -> "ChunkForward":
        """The generator over the chunk's frames and the ground-truth flow, laid out for the losses."""
        with self.speed.autocast(self.device):
            outputs, fake_prev, new_carry = self.generate_chunk(A, frames, carry)
        real = B[:, frames]  # B x n x 3 x H x W
        real_prev = B[:, [f - 1 for f in frames]]
        flow_gt, conf = self.flow_source(real, real_prev)  # B x n x 2/1 x H x W, no gradient
        # a no_first_img first frame has no generated predecessor: the original compares it with the
        # real previous frame
        prev = [p if p is not None else real_prev[:, i] for i, p in enumerate(fake_prev)]
        return ChunkForward(
            outputs=outputs,
            carry=new_carry,
            real=real,
            flow_gt=flow_gt,
            fake=self._stack([o.img_final for o in outputs]),
            raw=self._stack([o.img_raw for o in outputs]),
            fake_prev=self._stack(prev),
            labels=self._by_frame(A[:, frames]),
            real_f=self._by_frame(real),
            real_prev_f=self._by_frame(real_prev),
            flow_gt_f=self._by_frame(flow_gt),
            conf_f=self._by_frame(conf),
        )

    def _by_frame(self, x: torch.Tensor) -> torch.Tensor:
        """B x n x ... -> (B·n) x ..., frame-major within each clip."""
        return self._fmt(x.flatten(0, 1))

    def _stack(self, tensors: list) -> torch.Tensor:
        """n tensors of B x ... -> (B·n) x ..., frame-major within each clip."""
        return self._fmt(torch.stack(tensors, dim=1).flatten(0, 1))

    def chunk_losses(self, chunk: "ChunkForward") -> LossTotals:
        """Every loss term of the chunk (image D, the generator's terms, temporal Ds), each added to
        the registry's owner."""
        m = self.config.model
        backend = self.speed.backend
        losses = LossTotals(self.loss_terms)
        labels, fake, raw, real_f = chunk.labels, chunk.fake, chunk.raw, chunk.real_f
        # image discriminator, on the final and the raw frames (the original sums both)
        pred_real = self.D_train(torch.cat([labels, real_f], 1))
        pred_fake, g_fake = self._predictions_on_fake(self.D_train, self.D_for_G, self.D, torch.cat([labels, fake], 1))
        pred_raw, g_raw = self._predictions_on_fake(self.D_train, self.D_for_G, self.D, torch.cat([labels, raw], 1))
        losses.add("D_real", 2 * gan_loss(pred_real, True))
        losses.add("D_fake", gan_loss(pred_fake, False) + gan_loss(pred_raw, False))
        losses.add("G_GAN", gan_loss(g_fake, True) + gan_loss(g_raw, True))
        losses.add("G_GAN_Feat", feature_matching_loss(g_fake, pred_real, m.num_D, m.n_layers_D)
                   + feature_matching_loss(g_raw, pred_real, m.num_D, m.n_layers_D))
        if self.vgg.enabled:
            losses.add("G_VGG", self.vgg(fake, real_f) + self.vgg(raw, real_f))

        # flow and warp losses, on the frames that have a flow (all but a no_first_img first frame)
        outputs = chunk.outputs
        with_flow = [i for i, o in enumerate(outputs) if o.flow is not None]
        if with_flow:
            rows = self._rows(with_flow, len(outputs), chunk.real.shape[0])
            flow = self._stack([outputs[i].flow for i in with_flow])
            conf = chunk.conf_f[rows]
            losses.add("F_Flow", flow_loss(flow, chunk.flow_gt_f[rows], conf))
            losses.add("F_Warp", flow_warp_loss(chunk.real_prev_f[rows], flow, real_f[rows], conf, backend=backend))
            if m.no_first_img:
                losses.add("W", weight_loss(self._stack([outputs[i].weight for i in with_flow]), conf))
        losses.add("G_Warp", temporal_consistency_loss(fake, chunk.fake_prev, chunk.flow_gt_f, chunk.conf_f, backend=backend))

        fake_frames = torch.stack([o.img_final for o in outputs], 1)
        self._temporal_losses(chunk.real, fake_frames, chunk.flow_gt, chunk.carry, losses)
        return losses

    def _predictions_on_fake(self, train, for_g, module, fake):
        """A discriminator's predictions on generated input, for its own loss and for the generator's.
        The original runs it twice: on the detached input, and with its parameters frozen for the
        generator. With ``shared_d_forwards`` one forward serves both (the same values); each owner's
        backward then takes only its own parameters (optimizer_steps)."""
        if self.speed.shared_d_forwards:
            pred = train(fake)
            return pred, pred
        pred = train(fake.detach())
        with frozen(module):
            return pred, for_g(fake)

    def _loss_values(self, losses: LossTotals, totals: dict) -> dict:
        """Every term and the G and D totals as floats (one device-to-host copy)."""
        tensors = {**losses.values, "G_total": totals["G"], "D_total": totals["D"]}
        floats = torch.stack([v.detach().float() for v in tensors.values()]).tolist()
        return dict(zip(tensors, floats))

    def optimizer_steps(self, totals: dict):
        """Each owner's backward pass of its total (``{owner: total}``) and optimizer step, in the order
        G, D, temporal Ds."""
        # a temporal scale with too few frames so far in the clip has no total
        owners = [owner for owner in self.optimizers if owner in totals]
        for i, owner in enumerate(owners):
            optimizer = self.optimizers[owner]
            optimizer.zero_grad(set_to_none=True)
            # a total trains its owner's network only; with shared_d_forwards the owners after this one go
            # back through the same graph
            trainable = [p for p in self.networks[owner].parameters() if p.requires_grad]
            keep_graph = self.speed.shared_d_forwards and i < len(owners) - 1
            self.scaler.scale(totals[owner]).backward(inputs=trainable, retain_graph=keep_graph)
            self.scaler.step(optimizer)
        unowned = set(totals) - set(self.optimizers)
        if unowned:
            raise KeyError(f"loss terms owned by {sorted(unowned)}, which no optimizer trains")
        self.scaler.update()

    @staticmethod
    def _rows(frame_ids: list[int], n: int, batch: int) -> list[int]:
        """Rows of the (B·n) frame-major batch that belong to the given frames of the chunk."""
        return [b * n + i for b in range(batch) for i in frame_ids]

    def _temporal_losses(self, real, fake, flow_gt, carry: Carry, losses: LossTotals):
        """Temporal discriminators on the clip's frames so far (history + this chunk); adds their terms
        and the generator's temporal terms to ``losses`` and keeps the history the next chunk needs in
        ``carry``."""
        m = self.config.model
        tD = m.n_frames_D
        history = carry.history
        real_all = torch.cat([history["real"], real], 1) if history else real
        fake_all = torch.cat([history["fake"], fake], 1) if history else fake
        flow_all = torch.cat([history["flow"], flow_gt], 1) if history else flow_gt
        total, n = real_all.shape[1], real.shape[1]
        for s in range(m.n_scales_temporal):
            stride = tD**s
            span = stride * (tD - 1)
            n_groups = min(total - span, n)
            if n_groups <= 0:
                continue
            real_in, fake_in = [], []
            # as the original: groups ending at the newest frame, then every tD frames further back
            for t in range(0, n_groups, tD):
                end = total - t
                window = slice(end - span - 1, end)
                if s == 0:
                    flows = flow_all[:, end - span : end]
                else:
                    sampled = real_all[:, window][:, ::stride]
                    flows, _ = self.flow_source(sampled[:, 1:], sampled[:, :-1])
                real_in.append(self.D_T.sample(real_all[:, window], flows, s))
                fake_in.append(self.D_T.sample(fake_all[:, window], flows, s))
            real_in, fake_in = self._fmt(torch.cat(real_in)), self._fmt(torch.cat(fake_in))
            pred_real = self.D_T_train[s](real_in)
            pred_fake, g_fake = self._predictions_on_fake(self.D_T_train[s], self.D_T_for_G[s], self.D_T.scales[s],
                                                          fake_in)
            losses.add(f"G_T_GAN_{s}", gan_loss(g_fake, True))
            losses.add(f"G_T_GAN_Feat_{s}", feature_matching_loss(g_fake, pred_real, m.num_D, m.n_layers_D))
            losses.add(f"D_T_{s}", discriminator_loss(pred_real, pred_fake))
        keep = tD ** (m.n_scales_temporal - 1) * (tD - 1)
        carry.history = {
            "real": real_all[:, -keep:].detach(),
            "fake": fake_all[:, -keep:].detach(),
            "flow": flow_all[:, -keep:].detach(),
        }

    def _check_finite(self, values: dict):
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        # every rank decides together: one rank stopping alone would leave the others waiting for it
        if not any_rank(self.dist, bool(bad), self.device):
            self.nonfinite_streak = 0
            return
        if not bad:
            bad = {"(a loss on another process)": float("nan")}
        self.nonfinite_streak += 1
        if self.speed.amp == "fp16" and self.nonfinite_streak < FP16_NONFINITE_PATIENCE:
            return  # the GradScaler skips this step and lowers its scale
        where = f"epoch {self.epoch}, iteration {self.iteration + 1}"
        streak = f" for {self.nonfinite_streak} iterations in a row" if self.nonfinite_streak > 1 else ""
        saved = (
            f"the last checkpoint, {self.checkpoint_path}, holds the state before"
            if self.checkpoint_path.is_file()
            else "no checkpoint was written"
        )
        raise NonFiniteLossError(
            f"training stopped at {where}: non-finite losses{streak}: "
            + ", ".join(f"{k}={v}" for k, v in bad.items())
            + f"; {saved}. Try a lower learning rate (--lr, now {self.config.schedule.lr:g})"
            + (" or --amp bf16 / off" if self.speed.amp == "fp16" else "")
            + "."
        )

    # ------------------------------------------------------------------ the loop

    def schedule_iterations(self) -> int:
        """Iterations of the whole schedule with the data source's epoch length."""
        return sum(
            self.source.iterations(e, self.schedule.n_frames_total_at(e)) for e in range(1, self.schedule.total_epochs + 1)
        )

    @property
    def iteration_limit(self) -> int:
        """Where the run stops early (0 = it runs the whole schedule): the budget's count, or max_iters."""
        return self.budget.iterations if self.budget is not None else self.config.schedule.max_iters

    def total_iterations(self) -> int:
        total, limit = self.schedule_iterations(), self.iteration_limit
        return min(total, limit) if limit else total

    def clip_chunks(self, A: torch.Tensor) -> list[list[int]]:
        """The chunks (lists of absolute frame indices) a clip of labels A is walked in; every rank
        walks as many as the shortest clip of any rank allows."""
        tG, per_load = self.config.model.n_frames_G, self.config.schedule.max_frames_per_gpu
        n_generated = A.shape[1] - tG + 1
        per_load = min(per_load, n_generated)
        n_chunks = min_over_ranks(self.dist, n_generated // per_load, self.device)
        return [list(range(tG - 1 + c * per_load, tG - 1 + (c + 1) * per_load)) for c in range(n_chunks)]

    def timed_chunk(self, A: torch.Tensor, B: torch.Tensor, frames: list[int], carry: Carry):
        """``train_chunk``, timed: the time of an iteration in which torch.compile compiled goes to
        ``compile_seconds``, the others to ``iteration_times``."""
        graphs = compiled_graphs()
        began = time.perf_counter()
        result = self.train_chunk(A, B, frames, carry)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - began
        if compiled_graphs() != graphs:
            self.compile_seconds += seconds
        else:
            self.iteration_times.append(seconds)
        return result

    def fit_budget(self, started: float) -> IterationBudget:
        """Train the first iterations to measure the speed (torch.compile compiles here, outside the
        measured times), put every model, optimizer and random generator back as it was, and fix the
        schedule that fits the rest of the ``max_minutes`` budget counted from ``started``."""
        snapshot = copy.deepcopy({
            "models": {"G": self.G.state_dict(), "D": self.D.state_dict(), "D_T": self.D_T.state_dict()},
            "optimizers": {owner: o.state_dict() for owner, o in self.optimizers.items()},
            "scaler": self.scaler.state_dict(),
            "rng": ckpt.rng_state(self.device),
        })
        per_iteration = self._measure_speed(BUDGET_MEASURED_SHARE * 60 * self.config.schedule.max_minutes)
        for name, module in (("G", self.G), ("D", self.D), ("D_T", self.D_T)):
            module.load_state_dict(snapshot["models"][name])
        for owner, optimizer in self.optimizers.items():
            optimizer.load_state_dict(snapshot["optimizers"][owner])
        self.scaler.load_state_dict(snapshot["scaler"])
        ckpt.set_rng_state(snapshot["rng"], self.device)

        # the slowest rank sets the pace; every rank must fit the same count
        s = self.config.schedule
        budget = IterationBudget.fit(
            s.max_minutes, time.perf_counter() - started, per_iteration, self.source.order.epoch_length,
            self.schedule_iterations(), s.max_iters,
        )
        iterations = min_over_ranks(self.dist, budget.iterations, self.device)
        least = self.config.data.batch_size * self.dist.world_size
        epoch_length = -min_over_ranks(self.dist, -max(budget.epoch_length, least), self.device)
        return dataclasses.replace(budget, iterations=iterations, epoch_length=epoch_length)

    def _measure_speed(self, seconds: float) -> float:
        """Median seconds per iteration over the iterations of epoch 1 that did not compile, at least
        BUDGET_MEASURED_ITERATIONS of them and ``seconds`` in all (their times are taken back out of
        iteration_times)."""
        timed_before = len(self.iteration_times)
        for iterations, _ in enumerate(self.measuring_iterations(), start=1):
            measured = self.iteration_times[timed_before:]
            short = len(measured) < BUDGET_MEASURED_ITERATIONS or sum(measured) < seconds
            # every rank stops together (each step of a clip is collective)
            if not any_rank(self.dist, short, self.device):
                del self.iteration_times[timed_before:]
                return statistics.median(measured)
            if iterations - len(measured) > BUDGET_MEASURED_ITERATIONS:
                raise RuntimeError("torch.compile kept recompiling while the speed was measured; "
                                   "use --compile off or --max_minutes 0")

    def measuring_iterations(self):
        """Timed training iterations over epoch 1's clips, again and again, without the run's bookkeeping
        (progress, logs, checkpoints): what measuring the speed needs. Yields after each iteration."""
        self._set_epoch(1)
        while True:
            for batch in self.source.batches(1, self.schedule.n_frames_total_at(1)):
                A, B = self._to_device(batch["A"]), self._to_device(batch["B"])
                carry = self.start_carry(B)
                for frames in self.clip_chunks(A):
                    _, carry, _ = self.timed_chunk(A, B, frames, carry)
                    yield

    def apply_budget(self, budget: IterationBudget):
        """Train on the budget's schedule: its epoch length, stopping at its iteration count."""
        self.budget = budget
        self.source.set_epoch_length(budget.epoch_length)

    def train(self) -> dict:
        """Run until the schedule (or max_iters, or the budget's count) ends. Returns a summary (iterations,
        speed)."""
        started = time.perf_counter()
        if self.config.schedule.max_minutes and self.budget is None:
            if self.iteration:
                raise ConfigError(
                    "max_minutes fits a schedule from the start of a run; this run was resumed at iteration "
                    f"{self.iteration} from a checkpoint without one (resume it with --max_minutes 0)"
                )
            self.apply_budget(self.fit_budget(started))
            if self.dist.is_main:
                b = self.budget
                log.info("budget %.1f min: %.3f s/iteration measured (compilation %.0f s): %d iterations, "
                         "epochs of %d clips", b.minutes, b.seconds_per_iteration, self.compile_seconds,
                         b.iterations, b.epoch_length)
        total = self.total_iterations()
        max_iters = self.iteration_limit
        bar = self._progress_bar(total)
        self._install_signal_handlers()
        if self.dist.is_main:
            log.info("training on %s (%d process%s): %s", self.device, self.dist.world_size,
                     "es" if self.dist.enabled else "", self.speed.describe())
        try:
            while self.epoch <= self.schedule.total_epochs and not (max_iters and self.iteration >= max_iters):
                self._set_epoch(self.epoch)
                batches = self.source.batches(
                    self.epoch, self.schedule.n_frames_total_at(self.epoch), self.position,
                    pin_memory=self.device.type == "cuda",
                )
                for batch in batches:
                    A, B = self._to_device(batch["A"]), self._to_device(batch["B"])
                    chunks = self.clip_chunks(A)
                    if self.carry is None:
                        self.carry = self.start_carry(B)
                    while self.chunk < len(chunks):
                        if any_rank(self.dist, self._stop_signal is not None, self.device):
                            self.save()
                            raise TrainingInterrupted(self._stop_signal or signal.SIGTERM, self.checkpoint_path, self.iteration)
                        frames = chunks[self.chunk]
                        values, self.carry, fake = self.timed_chunk(A, B, frames, self.carry)
                        self.chunk += 1
                        self.iteration += 1
                        self._log(values, bar, A, B, fake, frames)
                        if self.iteration % self.config.run.save_latest_freq == 0:
                            self.save()
                        if max_iters and self.iteration >= max_iters:
                            break
                    if max_iters and self.iteration >= max_iters:
                        break
                    self.position += 1
                    self.chunk, self.carry = 0, None
                else:
                    self.epoch += 1
                    self.position = 0
            self.save()
        finally:
            self._restore_signal_handlers()
            if bar is not None:
                bar.close()
            if self.tensorboard is not None:
                self.tensorboard.flush()
        return self.summary()

    def summary(self) -> dict:
        times = self.iteration_times[3:] or self.iteration_times  # the first iterations warm up
        per_iter = sum(times) / len(times) if times else float("nan")
        peak = torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None
        return {
            "iterations": self.iteration,
            "epoch": self.epoch,
            "seconds_per_iteration": per_iter,
            "iterations_per_second": 1.0 / per_iter if times else float("nan"),
            "frames_per_second": self.config.schedule.max_frames_per_gpu * self.config.data.batch_size
            * self.dist.world_size / per_iter if times else float("nan"),
            "compile_seconds": self.compile_seconds,
            "peak_memory_bytes": peak,
            "speed": self.speed.describe(),
            "device": str(self.device),
        }

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict:
        return {
            "config": to_dict(self.config),
            "models": {"G": self.G.state_dict(), "D": self.D.state_dict(), "D_T": self.D_T.state_dict()},
            "optimizers": {owner: optimizer.state_dict() for owner, optimizer in self.optimizers.items()},
            "scaler": self.scaler.state_dict(),
            "budget": None if self.budget is None else dataclasses.asdict(self.budget),
            "progress": {
                "epoch": self.epoch,
                "position": self.position,
                "chunk": self.chunk,
                "iteration": self.iteration,
                "nonfinite_streak": self.nonfinite_streak,
                "world_size": self.dist.world_size,
            },
        }

    def save(self) -> Path | None:
        """Write the checkpoint (rank 0; every rank contributes its RNG state and carried frames)."""
        per_rank = gather_objects(self.dist, {
            "rng": ckpt.rng_state(self.device),
            "carry": None if self.carry is None else self.carry.state(),
        })
        if not self.dist.is_main:
            return None
        payload = self.state()
        payload["rng"] = [r["rng"] for r in per_rank]
        payload["carry"] = [r["carry"] for r in per_rank]
        ckpt.save_checkpoint(self.checkpoint_path, payload)
        save_yaml(self.config, self.run_dir / run_folder.CONFIG)
        return self.checkpoint_path

    def load(self, path):
        path = run_folder.checkpoint_file(path)
        # on the CPU first: the RNG states must stay CPU tensors; the rest is copied into place
        payload = ckpt.load_checkpoint(path, to_dict(self.config), map_location="cpu")
        progress = payload["progress"]
        if progress["world_size"] != self.dist.world_size:
            raise ckpt.CheckpointError(
                f"checkpoint {path} was written by {progress['world_size']} processes; resume it with the same "
                f"number (this run has {self.dist.world_size}) so that every rank continues its own data and RNG"
            )
        ckpt.load_module_state(self.G, payload["models"]["G"], "generator", path)
        ckpt.load_module_state(self.D, payload["models"]["D"], "discriminator", path)
        ckpt.load_module_state(self.D_T, payload["models"]["D_T"], "temporal discriminator", path)
        ckpt.load_optimizer_state(self.opt_G, payload["optimizers"]["G"], "generator", path)
        ckpt.load_optimizer_state(self.optimizers["D"], payload["optimizers"]["D"], "discriminator", path)
        for s in range(len(self.D_T.scales)):
            ckpt.load_optimizer_state(self.optimizers[f"D_T_{s}"], payload["optimizers"][f"D_T_{s}"],
                                      f"temporal discriminator {s}", path)
        if payload.get("scaler"):
            self.scaler.load_state_dict(payload["scaler"])
        if payload.get("budget"):
            self.apply_budget(IterationBudget(**payload["budget"]))
        self.epoch, self.position = progress["epoch"], progress["position"]
        self.chunk, self.iteration = progress["chunk"], progress["iteration"]
        self.nonfinite_streak = progress["nonfinite_streak"]
        carry = payload["carry"][self.dist.rank]
        self.carry = None if carry is None else Carry.from_state(carry, self.device)
        ckpt.set_rng_state(payload["rng"][self.dist.rank], self.device)
        if self.dist.is_main:
            log.info("resumed from %s: epoch %d, iteration %d", path, self.epoch, self.iteration)

    # ------------------------------------------------------------------ signals

    def _install_signal_handlers(self):
        self._old_handlers = {}

        def handler(signum, frame):
            # the first signal stops at the next iteration boundary, after a checkpoint; a second one
            # is not waited for
            self._stop_signal = signum
            signal.signal(signum, self._old_handlers.get(signum, signal.SIG_DFL))
            if self.dist.is_main:
                log.warning("%s: saving a checkpoint and stopping after this iteration (again to stop now)",
                            signal.Signals(signum).name)

        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old_handlers[signum] = signal.signal(signum, handler)
            except ValueError:  # not the main thread: leave signals to the caller
                pass

    def _restore_signal_handlers(self):
        for signum, old in getattr(self, "_old_handlers", {}).items():
            signal.signal(signum, old)

    # ------------------------------------------------------------------ what a person sees

    def _progress_bar(self, total):
        if not self.show_progress:
            return None
        try:
            from tqdm import tqdm
        except ImportError:
            log.info("tqdm is not installed: no progress bar")
            return None
        return tqdm(total=total, initial=min(self.iteration, total), unit="it", desc="train", dynamic_ncols=True)

    def _open_tensorboard(self):
        if not (self.dist.is_main and self.config.run.tensorboard):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info("TensorBoard logging is off: torch.utils.tensorboard needs the tensorboard package "
                     "(pip install tensorboard); losses still go to %s", self.run_dir / run_folder.LOSSES)
            return None
        # events logged after the checkpoint this run continues from are dropped, as in losses.jsonl
        return SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.iteration + 1)

    def _log(self, values: dict, bar, A, B, fake, frames):
        if not self.dist.is_main:
            return
        if bar is not None:
            bar.update(1)
            bar.set_postfix(
                epoch=self.epoch, G=f"{values['G_total']:.3f}", D=f"{values['D_total']:.3f}",
                lr=f"{self.opt_G.param_groups[0]['lr']:.2g}", refresh=False,
            )
        if self.iteration % self.config.run.print_freq == 0 or self.iteration == 1:
            record = {"iteration": self.iteration, "epoch": self.epoch, "lr": self.opt_G.param_groups[0]["lr"], **values}
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / run_folder.LOSSES, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            if self.tensorboard is not None:
                for key, value in values.items():
                    self.tensorboard.add_scalar(f"loss/{key}", value, self.iteration)
                self.tensorboard.add_scalar("lr", record["lr"], self.iteration)
        if self.tensorboard is not None and self.iteration % self.config.run.display_freq == 0:
            label = A[0, frames[-1]].float()
            label = label[:3] if label.shape[0] >= 3 else label[:1].expand(3, -1, -1)
            row = torch.cat([label, fake[len(frames) - 1].float(), B[0, frames[-1]].float()], dim=2)
            self.tensorboard.add_image("label | synthesized | real", (row.clamp(-1, 1) + 1) / 2, self.iteration)
