class T2LError(Exception):
    """An error a user can fix: `str(err)` is one line naming the problem and the fix."""
