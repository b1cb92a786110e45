"""Errors raised by the data path. Each names the file (or folder) at fault and what was expected."""

from vid2vid_fast.errors import UserError


class VideoDataError(UserError, ValueError):
    """A video, frame or data set folder cannot be used as training data."""


class UnsupportedCodecError(VideoDataError):
    """The video's codec cannot be decoded by the chosen backend on the chosen device."""


class SequenceTooShortError(VideoDataError):
    """A video or frame sequence has fewer frames than one training clip needs."""


class DecodeTimeoutError(VideoDataError, TimeoutError):
    """A decoding pipeline produced nothing within its time limit."""


class NoSubjectFoundError(VideoDataError):
    """A video in which the label extractor found no face (or no person) to draw labels from."""


class LabelToolError(VideoDataError):
    """The label extractor (mediapipe, an optional extra) is missing or lacks the models it needs."""
