"""DifficultyHook's checkpoints: its state and sampler under one key.

The payload (:data:`CHECKPOINT_KEY`) carries a format version
(:data:`FORMAT_VERSION`, docs/design.md decision 13), the difficulty state,
the sampler and the count of invalid rows. ``after_load_checkpoint`` runs
before the runner restores its epoch, for ``--resume`` as well as
``load_from`` and testing, so the payload is kept until ``before_train``
decides (:meth:`DifficultyCheckpoint._restore`).
"""
import logging
import warnings
from typing import Any

from mmengine.logging import print_log

from mmdiff.core import SnapshotMismatch

__all__ = ['CHECKPOINT_KEY', 'FORMAT_VERSION', 'DifficultyCheckpoint']

CHECKPOINT_KEY = 'mmdiff_difficulty'
#: The version of the hook's checkpoint payload; a newer one is refused.
FORMAT_VERSION = 1


class DifficultyCheckpoint:
    """The checkpoint stages of :class:`~.DifficultyHook` (a mixin)."""

    @property
    def nan_rows(self) -> int:
        """Deprecated name of :attr:`invalid_rows`."""
        warnings.warn(
            'DifficultyHook.nan_rows is deprecated; use invalid_rows',
            DeprecationWarning,
            stacklevel=2)
        return self.invalid_rows

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        if self.state is None:
            return
        checkpoint[CHECKPOINT_KEY] = dict(
            format_version=FORMAT_VERSION,
            state=self.state.state_dict(),
            sampler=self.sampler.state_dict(),
            invalid_rows=self.invalid_rows)

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        # Runs before the runner restores its epoch, for --resume as well
        # as load_from and testing: keep it until before_train decides.
        self._loaded = checkpoint.get(CHECKPOINT_KEY)
        if self._loaded is None:
            print_log(
                'DifficultyHook: the checkpoint has no difficulty state '
                f'({CHECKPOINT_KEY!r}); training starts a fresh one.',
                logger='current',
                level=logging.WARNING)

    def _restore(self, runner: Any) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is None:
            return
        if runner.iter == 0:
            runner.logger.info(
                'DifficultyHook: weights loaded with load_from (no resume): '
                'starting a fresh difficulty state and prior sampling.')
            return
        version = loaded.get('format_version', 1)
        if type(version) is not int or version > FORMAT_VERSION:
            raise ValueError(
                f'Cannot resume the difficulty state: the checkpoint\'s '
                f'{CHECKPOINT_KEY!r} has format version {version!r}, this '
                f'mmdiff reads up to version {FORMAT_VERSION}; update mmdiff '
                'or resume with the version that wrote it.')
        try:
            # The state (framework-free) warns with `warnings`; the hook
            # says it the mmengine way, as the sampler does.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                self.state.load_state_dict(loaded['state'])
            for warning in caught:
                print_log(
                    f'DifficultyHook: {warning.message}',
                    logger='current',
                    level=logging.WARNING)
            self.sampler.load_state_dict(loaded['sampler'])
        except SnapshotMismatch as err:
            raise ValueError(
                f'Cannot resume the difficulty state: {err}. The checkpoint '
                'was trained on another dataset; resume it with the config '
                'it was trained with, or fine-tune with load_from instead '
                'of --resume.') from err
        except ValueError as err:
            raise ValueError(
                f'Cannot resume the difficulty state: the checkpoint\'s '
                f'{CHECKPOINT_KEY!r} is malformed ({err}); resume from '
                'another checkpoint, or fine-tune with load_from.') from err
        # 'nan_rows': the name of the count before format version 1
        self.invalid_rows = int(
            loaded.get('invalid_rows', loaded.get('nan_rows', 0)))
        runner.logger.info(
            f'DifficultyHook: resumed the difficulty state of epoch '
            f'{self.state.epoch}.')
