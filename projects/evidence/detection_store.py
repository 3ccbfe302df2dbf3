"""The detection evidence's results, resumable: runs keyed by their config.

Every run (an arm on a seed in a setting) is recorded under :func:`run_key`,
a hash of everything that decides its outcome: the generator arguments, the
schedule, the recipe, the arm's sampler and hook options, and the seed (not
``jobs``, ``threads`` or the folders). A section that stops keeps the runs
it finished; started again, here or on another machine from the committed
``docs/results/detection.json``, it trains only the runs whose key is not
recorded. Changing an arm's options or the schedule changes the key, so a
stale record is never reused.

The file (``FORMAT_VERSION`` 1)::

    {"format": 1,
     "groups": {name: {"preset", "schedule", "iterations", "data",
                       "num_hard_val", "num_normal_val", "versions",
                       "runs": [key, ...], "command", "started",
                       "seconds"}},
     "runs": {key: record}}

A group is one :class:`.detection.DetectionPreset` (a setting, or the
convergence curve); its ``runs`` are the keys of every run it has had at
its ``schedule`` (a run of part of its arms or seeds adds to them; a new
schedule starts the list afresh, so one table never mixes budgets).
"""
import hashlib
import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional

__all__ = [
    'FORMAT_VERSION', 'HARNESS_VERSION', 'KEY_FIELDS', 'schedule_of',
    'recipe_sha', 'run_key', 'ResultStore'
]

FORMAT_VERSION = 1
#: Bump when the harness or mmdiff changes what a run measures (the
#: metrics, the signal, the hook's arithmetic): every key changes, so no
#: record of the old code is reused. Version 1 adds nothing to the keys.
HARNESS_VERSION = 1
#: The preset's fields that decide a run's outcome (with the arm and seed).
KEY_FIELDS = ('epochs', 'images_per_epoch', 'batch_size', 'lr', 'warmup_iters',
              'decay_epochs', 'synthetic', 'rfs_thr', 'with_mask',
              'eval_every')


def schedule_of(preset: Any) -> Dict[str, Any]:
    """What a preset's runs share (:data:`KEY_FIELDS` and the recipe), as
    JSON reads it back (tuples as lists)."""
    spec = {name: getattr(preset, name) for name in KEY_FIELDS}
    spec['config'] = osp.basename(preset.config)
    return json.loads(json.dumps(spec))


def recipe_sha(preset: Any) -> str:
    """SHA-256 (16 hex digits) of the recipe file's text: a record is
    reused only with the recipe it ran (:meth:`ResultStore.get`)."""
    with open(preset.config, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def run_key(preset: Any, arm: str, seed: int) -> str:
    """The key of one run: 16 hex digits of a SHA-256 of its config."""
    from .detection import ARMS, SAMPLER_OPTIONS
    sampler, hook = ARMS[arm]
    spec = schedule_of(preset)
    if HARNESS_VERSION > 1:
        spec['harness'] = HARNESS_VERSION
    spec.update(
        arm=arm,
        sampler=sampler,
        hook=hook,
        sampler_options=SAMPLER_OPTIONS.get(arm, {}),
        seed=int(seed))
    text = json.dumps(spec, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ResultStore:
    """The recorded runs and groups of one results file.

    Args:
        path (str): The JSON file; read if it exists, written by
            :meth:`save` (atomically: a stopped write leaves the old file).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.groups: Dict[str, Dict[str, Any]] = {}
        self.runs: Dict[str, Dict[str, Any]] = {}
        if osp.exists(path):
            with open(path) as f:
                data = json.load(f)
            if data.get('format') != FORMAT_VERSION:
                raise ValueError(
                    f'{path} has results format {data.get("format")!r}, '
                    f'this harness reads {FORMAT_VERSION}; move the file '
                    'away to start afresh')
            self.groups = data['groups']
            self.runs = data['runs']

    def get(self,
            key: str,
            recipe: Optional[str] = None) -> Optional[Dict[str, Any]]:
        """The record of a run, or None if it was not recorded (or, given
        ``recipe``, was recorded with another recipe file)."""
        record = self.runs.get(key)
        if record is not None and recipe is not None and record.get(
                'recipe_sha') != recipe:
            return None
        return record

    def add(self, key: str, record: Dict[str, Any]) -> None:
        """Record a run."""
        self.runs[key] = dict(record, key=key)

    def records(self, group: str) -> List[Dict[str, Any]]:
        """The recorded runs of a group, in its (seed, arm) order.

        Raises:
            ValueError: If two records of the group share an arm and seed
                (the paired statistics would count one seed twice).
        """
        keys = self.groups.get(group, {}).get('runs', [])
        records = [self.runs[k] for k in keys if k in self.runs]
        seen = set()
        for r in records:
            if (r['method'], r['seed']) in seen:
                raise ValueError(
                    f'{self.path}: group {group!r} has two records of '
                    f"{r['method']} seed {r['seed']}; remove the stale one "
                    'from its runs list')
            seen.add((r['method'], r['seed']))
        return records

    def result(self, group: str) -> Dict[str, Any]:
        """A group as :func:`.detection_report.render_detection` reads it."""
        if group not in self.groups:
            raise KeyError(f'{self.path} has no results for {group!r} (it has '
                           f'{sorted(self.groups)}); run its section first')
        return dict(self.groups[group], records=self.records(group))

    def save(self) -> None:
        """Write the file (to a temporary file first, then renamed).

        One writer at a time: two sections running at once on the same
        file would each write their own copy (run them one after the other,
        or with different files).
        """
        os.makedirs(osp.dirname(osp.abspath(self.path)), exist_ok=True)
        tmp = f'{self.path}.{os.getpid()}.tmp'
        with open(tmp, 'w') as f:
            json.dump(
                dict(
                    format=FORMAT_VERSION,
                    groups=self.groups,
                    runs=dict(sorted(self.runs.items()))),
                f,
                indent=1,
                sort_keys=True)
            f.write('\n')
        os.replace(tmp, self.path)
