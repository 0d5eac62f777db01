"""Errors the CLI turns into one line on stderr and an exit code. Imports nothing."""

from __future__ import annotations


class LipParseError(Exception):
    """A failure the user can act on; its message names the thing and the cause."""

    exit_code = 1


class InputError(LipParseError):
    """A missing, unreadable or unsupported input (file, video, image, folder)."""

    exit_code = 2


class OutputError(LipParseError):
    """An output that cannot be written (folder, existing file, codec, disk)."""

    exit_code = 3


class WeightsError(LipParseError):
    """A weights file that is missing, not ONNX, or not a LIP-Net we can run."""

    exit_code = 4


class CameraError(LipParseError):
    """A camera that cannot be opened or was lost."""

    exit_code = 5


class DisplayError(LipParseError):
    """A window was asked for where there is no display."""

    exit_code = 6


class ModelError(LipParseError):
    """The model failed while running (a GPU fault, out of memory): not the input's fault."""

    exit_code = 7


class Interrupted(BaseException):
    """Raised by the CLI's SIGTERM and SIGINT handlers to stop a run (not a failure: exit 143 or 130).

    A BaseException, as KeyboardInterrupt is: the handler runs wherever the main thread is, and
    an `except Exception` that wraps a library's errors (the engine's around ONNX Runtime) must
    not turn the signal into one of them ('the model failed: Interrupted', exit 7).
    """

    exit_code = 143

    def __init__(self, exit_code: int = 143) -> None:
        super().__init__()
        self.exit_code = exit_code  # 130 for Ctrl-C (SIGINT), 143 for SIGTERM
