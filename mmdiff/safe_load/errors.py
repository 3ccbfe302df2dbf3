"""The two errors of a load, and how a refusal is worded."""
import pickle

__all__ = ['UnsafeCheckpointError', 'DamagedCheckpointError', 'refuse']


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A file holds something outside mmdiff's allow-list."""


class DamagedCheckpointError(ValueError):
    """A file that cannot be read as a checkpoint, or one over a budget."""


def refuse(what: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f'{what}; mmdiff loads checkpoints as data only (see '
        'mmdiff.safe_load) and refuses what a genuine mmengine / numpy '
        'checkpoint never holds (allow-list: mmdiff.safe_load.stand_ins)')
