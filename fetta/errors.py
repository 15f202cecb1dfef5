"""The error type the command line turns into one line on stderr and a non-zero exit."""


class FettaError(Exception):
    """A user-facing error: the message is one line naming the bad value and what was
    allowed. ValueError raised by validation is treated the same way."""


class RunTimeout(FettaError):
    """A program did not halt within its cycle limit. The backend has aborted it
    (``Ctrl.ABORT``) before this is raised, so the accelerator is idle again; no
    result of that run is returned."""
