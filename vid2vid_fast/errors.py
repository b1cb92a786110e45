"""The one base class of errors caused by what a person asked for: a bad file, folder, option or value.

Code raises a subclass of ``UserError`` where it detects the bad input, with a message that names the
file or option and says what was expected. The ``vid2vid-fast`` command prints such an error as one
line and exits with status 2; any other exception is a bug (or a failure that is not the user's) and
keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user; the message names it and says what was expected."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""
