class WarpPhysError(ValueError):
    """An error the user can act on: bad input, a bad declaration, a missing file.

    The message is one sentence that names the problem and the fix. The command line
    prints it as a single line and exits with status 2; library callers can catch it
    like any `ValueError`.
    """
