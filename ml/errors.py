"""Exception tree of the ``ml`` package (drawn in ``ml/__init__.py``)."""


class MLError(Exception):
    """Base class for every error raised by ``ml``."""


class ModelNotFoundError(MLError):
    """No model directory, checkpoint or registry version where one was expected."""


class DatasetError(MLError):
    """A dataset file is missing or cannot be parsed."""


class TeacherError(MLError):
    """A teacher model or endpoint failed to produce labels."""


class TeacherReplyError(TeacherError):
    """The teacher answered, but not in the expected form (no JSON, unknown verdict)."""
