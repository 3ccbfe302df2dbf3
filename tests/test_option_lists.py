"""Every list of choices is defined once in code; the configs' knob
comments and the README's option tables name exactly those choices."""
import re
from pathlib import Path
from typing import List

import pytest

from mmdiff.core import (FIRST_TERMS, NORMALIZATIONS, REDUCTIONS, SCHEMES,
                         STORAGES, UNSEEN_POLICIES)
from mmdiff.hooks.difficulty_hook import MODES

REPO = Path(__file__).resolve().parents[1]
README = (REPO / 'README.md').read_text()


def _comment_block(path: Path, key: str) -> str:
    """The knob comment of ``key``: its line and the indented ones after."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith('#') and key in line:
            block = [line]
            for follow in lines[i + 1:]:
                if not follow.startswith('#   ') or '.' in follow.split()[1]:
                    break
                block.append(follow)
            return '\n'.join(block)
    raise AssertionError(f'{path.name} has no knob comment for {key}')


def _names(text: str) -> List[str]:
    return re.findall(r"'([a-z0-9_]+)'", text)


@pytest.mark.parametrize('config', [
    'configs/lvis_difficulty.py',
    'configs/demo/mask-rcnn_r18_synthetic-lvis_difficulty.py'
])
def test_config_comments_list_every_scheme(config: str) -> None:
    block = _comment_block(REPO / config, 'sampler.scheme')
    assert sorted(_names(block)) == sorted(SCHEMES), block


def test_cifar_comment_names_only_schemes() -> None:
    block = _comment_block(
        REPO / 'configs/cifar/_base_/sampling/difficulty.py', 'sampler.scheme')
    assert set(_names(block)) <= set(SCHEMES), block


def test_lvis_config_comment_lists_the_reductions() -> None:
    block = _comment_block(REPO / 'configs/lvis_difficulty.py',
                           'custom_hooks.0.reduce')
    assert block.split('image:')[1].split() == ' | '.join(REDUCTIONS).split()


def _readme_row(option: str) -> str:
    rows = [r for r in README.splitlines() if r.startswith(f'| `{option}` |')]
    assert len(rows) == 1, option
    return rows[0].split('|')[3]


@pytest.mark.parametrize('option,choices', [
    ('scheme', SCHEMES),
    ('reduce', REDUCTIONS),
    ('storage', STORAGES),
    ('unseen', UNSEEN_POLICIES),
    ('first_term', FIRST_TERMS),
    ('mode', MODES),
    ('normalize', NORMALIZATIONS),
])
def test_readme_options_name_exactly_the_choices(option: str,
                                                 choices: tuple) -> None:
    named = set(_names(_readme_row(option)))
    assert set(choices) <= named, (option, set(choices) - named)
    assert named <= set(choices) | {'auto'}, (option, named - set(choices))
