class RegistryError(Exception):
    """A registry problem a user can fix; `str(err)` is one line naming the problem and the fix."""
