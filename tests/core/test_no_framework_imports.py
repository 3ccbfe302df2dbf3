"""mmdiff.core must stay framework-free (docs/design.md, "Layers")."""
import ast
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / 'mmdiff' / 'core'
FORBIDDEN = {'mmengine', 'mmcv', 'mmdet', 'mmpretrain'}
ALLOWED_THIRD_PARTY = {'numpy', 'torch'}


def _imported_modules(path: Path) -> list:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module)
    return [name.split('.')[0] for name in names]


def test_the_scan_finds_a_framework_import(tmp_path: Path) -> None:
    """The checks below read imports correctly (else they pass vacuously)."""
    path = tmp_path / 'module.py'
    path.write_text('import numpy as np\nfrom mmengine.dist import x\n'
                    'from . import sibling\nimport torch.nn\n')
    assert _imported_modules(path) == ['numpy', 'mmengine', 'torch']
    assert len(list(CORE.glob('*.py'))) >= 4  # the scan sees the package


def test_no_framework_imports() -> None:
    offenders = {
        str(path.relative_to(CORE.parent.parent)):
        sorted(set(_imported_modules(path)) & FORBIDDEN)
        for path in CORE.rglob('*.py')
    }
    offenders = {path: mods for path, mods in offenders.items() if mods}
    assert not offenders, f'mmdiff/core imports a framework: {offenders}'


def test_only_numpy_torch_and_stdlib() -> None:
    allowed = ALLOWED_THIRD_PARTY | set(sys.stdlib_module_names)
    offenders = {}
    for path in CORE.rglob('*.py'):
        extra = set(_imported_modules(path)) - allowed
        if extra:
            offenders[str(path.relative_to(CORE.parent.parent))] = extra
    assert not offenders, f'mmdiff/core imports beyond numpy/torch: ' \
        f'{offenders}'
