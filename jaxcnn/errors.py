"""The one exception type for mistakes a person can fix (bad config, missing data, ...).

launch.py turns it into a single sentence on stderr and exit code 2, never a traceback.
"""


class UserError(Exception):
  """A problem with the user's input; its message says what to do."""


EXIT_USAGE = 2
