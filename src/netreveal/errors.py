"""The one exception type for bad input, so the CLI can print it on one line and exit with code 2."""


class NetrevealError(ValueError):
    """A problem with what the user gave us (a path, a model, a layer, a class index...).

    The message is a single line that names the problem; the CLI prints it without a traceback.
    """
