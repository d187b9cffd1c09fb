"""The errors alignkit raises for problems a user can fix.

The command line prints their message alone (no traceback) and exits with status 2; the message
always names where the problem is (a file and line, a config key) and what was expected.
"""


class AlignkitError(Exception):
    """A problem with the user's input or environment, explained in its message."""


class ConfigError(AlignkitError):
    """A config key is unknown, or its value has the wrong type or range."""


class DataError(AlignkitError):
    """A data record is malformed: names the file, the line (or row) and what was expected."""

    def __init__(self, location: str, problem: str):
        super().__init__(f"{location}: {problem}")
        self.location = location
        self.problem = problem


class RowDropped(DataError):
    """A well-formed row that gives no record of the kind asked for, by the dataset's own rules (a
    comparison its raters called a tie, say). Loading drops such rows and counts them whatever
    ``on_error`` says."""


class TrainingDiverged(AlignkitError):
    """The loss or a gradient became NaN or Inf; the last good checkpoint is left intact."""
