"""The one exception type for a user's mistake: a bad config, path, image or download."""


class UserError(Exception):
    """A mistake the user can fix; entry points print its message as one line and exit non-zero."""
