"""The error type the command line turns into one line on stderr and a non-zero exit."""


class FettaError(Exception):
    """A user-facing error: the message is one line naming the bad value and what was
    allowed. ValueError raised by validation is treated the same way."""
