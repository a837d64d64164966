"""User-facing errors.

Every error a user can cause with bad input (a malformed annotation line, a
missing dataset, a truncated checkpoint...) is a :class:`TcmbenchError`. The
CLI prints its message and exits non-zero without a traceback; library users
catch one base class.
"""

from __future__ import annotations


class TcmbenchError(Exception):
    """Base class for errors caused by user input or environment, not bugs."""

    exit_code = 2


class AnnotationFormatError(TcmbenchError):
    """A line or record of an annotation/prediction file does not parse.

    The message always names the file (``archive.zip:entry.txt`` inside
    archives), the 1-based line number when there is one, and the expected
    format, so the user can fix the file without reading our code.
    """

    def __init__(self, location: str, line: int | None, expected: str, detail: str = "") -> None:
        self.location = location
        self.line = line
        self.expected = expected
        self.detail = detail
        where = f"{location}, line {line}" if line is not None else location
        msg = f"{where}: malformed annotation"
        if detail:
            msg += f" ({detail})"
        msg += f"; expected {expected}"
        super().__init__(msg)


class ArchiveError(TcmbenchError):
    """A zip archive, or a member of it, cannot be read (damaged, truncated,
    encrypted, an unsupported compression method, over the size limit)."""


class DatasetNotFoundError(TcmbenchError):
    """The files of a dataset are not where the loader looks for them."""


class ImageReadError(TcmbenchError):
    """An image file is missing, unreadable or of an unsupported type."""


class CheckpointError(TcmbenchError):
    """A checkpoint is missing, truncated, or made for another model."""


class PluginError(TcmbenchError):
    """A plugin is missing, misbehaves, or does not support what was asked."""


class ProtocolError(TcmbenchError):
    """Evaluation input that the official protocol rejects (e.g. a prediction
    for an image that has no ground truth)."""


class UnsafePathError(TcmbenchError):
    """A name that would write or read outside its folder: a sample id or a
    dataset's own file name with a separator, ``..`` or an absolute path,
    or a path that resolves (through links) out of the folder."""
