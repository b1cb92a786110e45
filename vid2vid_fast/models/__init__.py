"""The standard vid2vid model: generators, discriminators, losses, ground-truth flow sources and loading of
original checkpoints."""

from .discriminator import (MultiscaleDiscriminator, NLayerDiscriminator, TemporalDiscriminators,
                            sample_temporal_frames, temporal_frame_indices)
from .flow_source import ClassicalFlow, FlowSource, RAFTFlow, flow_confidence, make_flow_source
from .generator import CompositeGenerator, CompositeLocalGenerator, GeneratorOutput, Vid2VidGenerator
from .losses import (LossWeights, VGGLoss, discriminator_loss, feature_matching_loss, flow_loss, flow_warp_loss,
                     gan_loss, masked_l1, temporal_consistency_loss, weight_loss)
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
    "LossWeights",
    "VGGLoss",
    "discriminator_loss",
    "feature_matching_loss",
    "flow_loss",
    "flow_warp_loss",
    "gan_loss",
    "masked_l1",
    "temporal_consistency_loss",
    "weight_loss",
    "FlowSource",
    "ClassicalFlow",
    "RAFTFlow",
    "flow_confidence",
    "make_flow_source",
]
