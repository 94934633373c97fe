"""Exceptions shared by the library and the command line."""


class IrstdError(Exception):
    """Base class of every error raised on purpose by irstd."""


class InputError(IrstdError, ValueError):
    """A user-supplied file, folder or value is unusable.

    The message is one line that names the file (or option) and the problem, e.g.
    ``"images/a.png: not an image (cannot decode)"``. The command line prints it and exits
    with status 2.
    """
