"""Training vid2vid: the run configuration, the training loop, checkpoints, generation and metrics.

The command line (``vid2vid-fast train|generate|bench|prepare``) is ``vid2vid_fast.cli``; from Python::

    from vid2vid_fast.train import Trainer, generate, make_config

    config = make_config("demo", overrides={"schedule": {"max_iters": 200}})
    trainer = Trainer(config)
    trainer.train()
    generate(trainer.checkpoint_path)
"""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import Config, ConfigError, load_yaml, make_config, save_yaml
from .generate import generate
from .schedule import Schedule
from .trainer import NonFiniteLossError, Trainer, TrainingInterrupted

__all__ = [
    "CheckpointError",
    "Config",
    "ConfigError",
    "NonFiniteLossError",
    "Schedule",
    "Trainer",
    "TrainingInterrupted",
    "generate",
    "load_checkpoint",
    "load_yaml",
    "make_config",
    "save_checkpoint",
    "save_yaml",
]
