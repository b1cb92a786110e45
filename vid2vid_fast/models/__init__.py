"""The standard vid2vid model: generators, discriminators and loading of original checkpoints."""

from .discriminator import (MultiscaleDiscriminator, NLayerDiscriminator, TemporalDiscriminators,
                            sample_temporal_frames, temporal_frame_indices)
from .generator import CompositeGenerator, CompositeLocalGenerator, GeneratorOutput, Vid2VidGenerator
from .original_checkpoint import load_original_state_dict, read_original_checkpoint, translate_original_state_dict

__all__ = [
    "CompositeGenerator",
    "CompositeLocalGenerator",
    "GeneratorOutput",
    "Vid2VidGenerator",
    "NLayerDiscriminator",
    "MultiscaleDiscriminator",
    "TemporalDiscriminators",
    "sample_temporal_frames",
    "temporal_frame_indices",
    "load_original_state_dict",
    "read_original_checkpoint",
    "translate_original_state_dict",
]
