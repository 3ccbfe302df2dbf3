"""DifficultyHook under two-process gloo DDP on the CPU (docs/design.md, 8).

Two forked processes train the tiny demo Mask R-CNN with mmengine's
``launcher='pytorch'`` and ``MMDistributedDataParallel``. Each rank writes
what it saw into the work dir; the test process then checks that the ranks
drew disjoint shards of one global list, that the hook merged the records
of both, and that both ended with the same sampler probabilities, the
same instance difficulty and the same weights.

mmengine's ``init_dist('pytorch')`` calls ``torch.cuda.set_device``, which
a CPU-only torch build lacks, and its default DDP wrapper passes
``device_ids=[LOCAL_RANK]``, which torch rejects for CPU modules; each rank
calls :func:`mmdiff.dist.prepare_cpu_launch`, as ``tools/train.py`` does,
which opens the gloo group (the Runner then skips ``init_dist``) and drops
the ``device_ids``.
"""
import os
import os.path as osp
import sys
from typing import Any, Dict, List

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from mmengine.hooks import Hook
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from mmdiff.dist import prepare_cpu_launch
from mmdiff.hooks import DifficultyHook
from ..conftest import free_port, tiny_demo_cfg

pytestmark = [
    pytest.mark.slow,
    # The ranks inherit the registered test hook through fork.
    pytest.mark.skipif(
        not sys.platform.startswith('linux'),
        reason='forks the training processes'),
    pytest.mark.skipif(
        torch.cuda.is_available(),
        reason='the CPU (gloo) path; with CUDA mmengine opens nccl'),
]

WORLD_SIZE = 2
EPOCHS = 2
# Images per epoch over both ranks (the tiny set's 32): 8 iterations of
# batch 2 per rank.
NUM_SAMPLES = 32


def _difficulty_hook(runner: Runner) -> DifficultyHook:
    return next(h for h in runner.hooks if isinstance(h, DifficultyHook))


@HOOKS.register_module(force=True)
class DistRecordHook(Hook):
    """Writes what one rank sampled, captured and merged, epoch by epoch.

    Runs after DifficultyHook (NORMAL), so after each epoch it sees the
    probabilities the sampler will use next.

    Args:
        out_dir (str): Where ``rank{r}_epoch{e}.npz`` and
            ``rank{r}_final.npz`` / ``rank{r}_weights.pth`` go.
    """

    priority = 'BELOW_NORMAL'

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.seen: List[int] = []
        self.gathered: Dict[str, Any] = {}

    def _path(self, runner: Runner, name: str) -> str:
        return osp.join(self.out_dir, f'rank{runner.rank}_{name}')

    def before_train(self, runner: Runner) -> None:
        hook = _difficulty_hook(runner)
        sampler = hook.sampler
        np.save(self._path(runner, 'prior.npy'), sampler.prior)
        torch.save(runner.model.module.state_dict(),
                   self._path(runner, 'initial.pth'))
        gather, records = hook._gather_records, hook.state.records
        take = records.take

        def recording_take() -> Dict[str, Any]:
            # This rank's records (EpochRecords.take), before the merge.
            local = take()
            self.gathered = dict(
                local_num=local['num'],
                local_ids=local.get('ids', np.zeros(0, dtype=np.int64)))
            return local

        def recording_gather() -> Dict[str, Any]:
            merged = gather()
            self.gathered['merged_num'] = merged['num']
            self.gathered['merged_changed'] = len(merged['changed'])
            return merged

        records.take = recording_take
        hook._gather_records = recording_gather

    def after_train_iter(self,
                         runner: Runner,
                         batch_idx: int,
                         data_batch: Any = None,
                         outputs: Any = None) -> None:
        self.seen.extend(s.sample_idx for s in data_batch['data_samples'])

    def after_train_epoch(self, runner: Runner) -> None:
        hook = _difficulty_hook(runner)
        sampler = hook.sampler
        np.savez(
            self._path(runner, f'epoch{runner.epoch}.npz'),
            probs=sampler.probabilities,
            global_indices=sampler.last_indices.numpy(),
            seen=np.asarray(self.seen, dtype=np.int64),
            objects_updated=runner.message_hub.get_info(
                'difficulty/objects_updated'),
            wrapped=isinstance(runner.model, MMDistributedDataParallel),
            storage=hook.state.storage,
            **self.gathered)
        self.seen = []

    def after_train(self, runner: Runner) -> None:
        hook = _difficulty_hook(runner)
        np.savez(
            self._path(runner, 'final.npz'),
            instance_difficulty=hook.instance_difficulty())
        torch.save(runner.model.module.state_dict(),
                   self._path(runner, 'weights.pth'))


def _train_rank(rank: int, port: int, data_root: str, work_dir: str,
                storage: str) -> None:
    """One DDP rank (the body of a forked process)."""
    # One thread per rank on a 2-core machine; also keeps the child clear
    # of the OpenMP pool the parent may have started before forking.
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD_SIZE))
    cfg = tiny_demo_cfg(
        data_root,
        work_dir,
        max_epochs=EPOCHS,
        **{'train_dataloader.sampler.images_per_epoch': NUM_SAMPLES})
    cfg.launcher = 'pytorch'
    cfg.env_cfg = dict(
        cudnn_benchmark=False,
        mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
        dist_cfg=dict(backend='nccl', timeout=120))
    # What tools/train.py does: gloo instead of nccl, DDP without GPUs.
    assert prepare_cpu_launch(cfg)
    try:
        cfg.default_hooks.checkpoint = None
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
        cfg.custom_hooks[0].update(storage=storage, topk=4)
        cfg.custom_hooks.append(dict(type='DistRecordHook', out_dir=work_dir))
        Runner.from_cfg(cfg).train()
    finally:
        torch_dist.destroy_process_group()


# dense: the demo's (auto) storage; topk: LVIS scale's, whose records are
# gathered compressed, with their exact first terms.
@pytest.mark.parametrize('storage', ['dense', 'topk'])
def test_two_rank_gloo_run_agrees(synthetic_lvis_root: str, tmp_path: Any,
                                  storage: str) -> None:
    work_dir = str(tmp_path)
    mp.start_processes(
        _train_rank,
        args=(free_port(), synthetic_lvis_root, work_dir, storage),
        nprocs=WORLD_SIZE,
        join=True,
        start_method='fork')

    def load(rank: int, name: str) -> Any:
        return np.load(osp.join(work_dir, f'rank{rank}_{name}'))

    prior = load(0, 'prior.npy')
    np.testing.assert_array_equal(load(1, 'prior.npy'), prior)
    for epoch in range(EPOCHS):
        r0, r1 = load(0, f'epoch{epoch}.npz'), load(1, f'epoch{epoch}.npz')
        assert r0['wrapped'] and r1['wrapped']
        assert r0['storage'] == r1['storage'] == storage
        # Both ranks drew the same global list and trained on the
        # positions r::2 of it (AspectRatioBatchSampler may reorder).
        indices = r0['global_indices']
        assert indices.size == NUM_SAMPLES
        np.testing.assert_array_equal(r1['global_indices'], indices)
        for rank, r in enumerate((r0, r1)):
            np.testing.assert_array_equal(
                np.sort(r['seen']), np.sort(indices[rank::WORLD_SIZE]))
        # The hook merged both ranks' records: the predictions ...
        assert r0['local_num'] > 0 and r1['local_num'] > 0
        total = int(r0['local_num'] + r1['local_num'])
        assert int(r0['merged_num']) == int(r1['merged_num']) == total
        # ... and the objects (an object seen on both ranks counts once).
        assert int(r0['merged_changed']) == 0
        union = np.union1d(r0['local_ids'], r1['local_ids'])
        for r in (r0, r1):
            assert int(r['objects_updated']) == union.size
        assert union.size > max(
            np.unique(r['local_ids']).size for r in (r0, r1))
        # Identical sampling probabilities on both ranks, bit for bit.
        np.testing.assert_array_equal(r1['probs'], r0['probs'])
        if epoch == 0:
            assert not np.allclose(r0['probs'], prior)

    np.testing.assert_array_equal(
        load(1, 'final.npz')['instance_difficulty'],
        load(0, 'final.npz')['instance_difficulty'])

    def state(name: str) -> Dict[str, torch.Tensor]:
        return torch.load(
            osp.join(work_dir, name), map_location='cpu', weights_only=True)

    # Both ranks trained the same weights away from the same start.
    final = [state(f'rank{rank}_weights.pth') for rank in range(WORLD_SIZE)]
    initial = state('rank0_initial.pth')
    assert final[0].keys() == final[1].keys() == initial.keys()
    for name, value in final[0].items():
        assert torch.equal(value, final[1][name]), name
    assert any(not torch.equal(value, initial[name])
               for name, value in final[0].items())
