"""Resume without executing anything a checkpoint holds.

mmengine 0.10.7's ``Runner.resume`` and ``FlexibleRunner.resume`` pass
``checkpoint['meta']['config']``, a string from the file, to
``Config.fromstring(..., '.py')``, which runs it as Python (to compare the
GPU count it was trained with). mmengine's own checkpoints never hold that
key (they save the config as text under ``meta['cfg']``), so only a crafted
file reaches it. :func:`guard_resume` wraps ``resume`` so that, for the
duration of the call, the checkpoint handed back to it has that key set
aside: nothing from the file is compiled, and a warning says so. The
config of this run (the command line's) is what counts; when the
checkpoint's ``meta['cfg']`` differs from it, as text, a warning says that
too.

The guard is applied on ``import mmdiff`` only to the runner classes whose
``resume`` calls ``fromstring`` (see :mod:`mmdiff.compat`).
"""
import functools
import inspect
from typing import Any, Callable, Dict

__all__ = ['guard_resume', 'resume_runs_config', 'set_config_aside']


def resume_runs_config(resume: Callable) -> bool:
    """Whether ``resume`` hands a checkpoint's text to ``fromstring``."""
    try:
        return 'fromstring' in inspect.getsource(resume)
    except (OSError, TypeError):  # no source: assume the worst
        return True


def set_config_aside(runner: Any, checkpoint: Any) -> Any:
    """Remove ``meta['config']`` (never executed); compare ``meta['cfg']``."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict):
        return checkpoint
    logger = getattr(runner, 'logger', None)
    if 'config' in meta:
        meta.pop('config')
        if logger is not None:
            logger.warning(
                "The checkpoint holds meta['config'], which mmengine would "
                'execute as Python to check the GPU count; mmdiff does not '
                'execute it. The config of this run is used.')
    saved, current = meta.get('cfg'), getattr(runner, 'cfg', None)
    text = getattr(current, 'pretty_text', None) if current else None
    if isinstance(saved, str) and isinstance(text, str) and saved != text \
            and logger is not None:
        logger.warning(
            'The checkpoint was saved by a run whose config differs from this '
            "run's (compared as text, not executed); this run's config is "
            'used.')
    return checkpoint


def _wrap_loader(owner: Any, name: str, runner: Any) -> Dict[str, Any]:
    """Shadow ``owner.<name>`` so that its checkpoint has config set aside;
    returns what to restore."""
    saved = {name: owner.__dict__[name]} if name in owner.__dict__ else {}
    load = getattr(owner, name)

    @functools.wraps(load)
    def load_as_data(*args: Any, **kwargs: Any) -> Any:
        return set_config_aside(runner, load(*args, **kwargs))

    setattr(owner, name, load_as_data)
    return saved


def guard_resume(runner_class: type, loader: str) -> None:
    """Wrap ``runner_class.resume``; ``loader`` is the attribute path
    (``'load_checkpoint'`` or ``'strategy.resume'``) that hands it the
    checkpoint."""
    original = runner_class.resume
    if getattr(original, '_mmdiff_guarded', False):
        return

    @functools.wraps(original)
    def resume(self: Any, *args: Any, **kwargs: Any) -> Any:
        *path, name = loader.split('.')
        owner = self
        for part in path:
            owner = getattr(owner, part)
        saved = _wrap_loader(owner, name, self)
        try:
            return original(self, *args, **kwargs)
        finally:
            delattr(owner, name)
            for key, value in saved.items():
                setattr(owner, key, value)

    resume._mmdiff_guarded = True  # type: ignore[attr-defined]
    runner_class.resume = resume
