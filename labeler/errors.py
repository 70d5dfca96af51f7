"""Errors the CLI turns into one clear line on stderr and a non-zero exit."""


class LabelerError(Exception):
    """Bad input or an unusable file: the message is meant for the user as it is."""


class DataError(LabelerError):
    """An input data file is missing, unreadable or holds nothing usable."""


class BundleError(LabelerError):
    """A model bundle is missing, corrupt or made by an incompatible version."""


class ModelNotAvailableError(LabelerError):
    """A transformer model could not be found locally and the hub is not reachable."""


class ParameterError(LabelerError, ValueError):
    """A strategy parameter or an option that is unknown or has a bad value (caught before
    any training)."""


class FetchError(LabelerError):
    """GitHub could not be read (an error answer, or no connection): a failure of the
    service rather than of the user's input (``retrain`` exits 1 for it, not 2)."""
