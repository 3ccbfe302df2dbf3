from .difficulty_hook import CHECKPOINT_KEY, DifficultyHook

__all__ = ['DifficultyHook', 'CHECKPOINT_KEY']
