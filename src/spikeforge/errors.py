"""User-facing error type: its message is one sentence naming the problem and the fix."""


class SpikeforgeError(Exception):
    """An error caused by user input (config, data, shapes, files).

    The CLI prints ``str(error)`` as a single line and exits non-zero, without a traceback.
    """
