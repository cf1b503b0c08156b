"""User-facing errors.

A :class:`GbsbiError` is a mistake in the user's input (a file, a flag, a value). The command
line prints its message as one line and exits with status 2, without a traceback. Messages name
the file, the dataset, and the shape or value expected and found.
"""


class GbsbiError(Exception):
    """An error in the user's input, reported as one line with exit status 2."""
