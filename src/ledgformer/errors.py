"""User-facing errors: the CLI prints these as one line (exit code 2), no traceback."""


class LedgformerError(Exception):
    """A mistake in what the user gave us (file, option, card ...), with what to do about it."""
