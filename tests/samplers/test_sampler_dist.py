"""A real two-process (gloo, loopback) run of DifficultyClassAwareSampler.

Both ranks build the sampler with ``seed=None`` (so the seed is broadcast by
``sync_random_seed``), set the same difficulty, draw their shard, and
all_gather shows the shards are equal-length slices of one global list.
"""
from typing import List

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmdiff.samplers import DifficultyClassAwareSampler
from ..conftest import free_port

NUM_IMAGES = 10
WORLD_SIZE = 2


class _Dataset:

    metainfo = dict(classes=('a', 'b', 'c'))

    def __len__(self) -> int:
        return NUM_IMAGES

    def get_cat_ids(self, idx: int) -> List[int]:
        return [idx % 3] if idx % 4 else [0, 2]


def _worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=WORLD_SIZE)
    try:
        sampler = DifficultyClassAwareSampler(
            _Dataset(), seed=None, scheme='class_aware', num_samples=11)
        sampler.set_difficulty(np.arange(1.0, NUM_IMAGES + 1), epoch=0)
        sampler.set_epoch(1)
        shard = torch.tensor(list(sampler), dtype=torch.int64)
        gathered = [torch.empty_like(shard) for _ in range(WORLD_SIZE)]
        dist.all_gather(gathered, shard)
        np.savez(
            f'{out_dir}/rank{rank}.npz',
            seed=sampler.seed,
            length=len(sampler),
            shard=shard.numpy(),
            gathered=torch.stack(gathered).numpy(),
            global_list=sampler.last_indices.numpy())
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_draw_slices_of_one_global_list(tmp_path):
    # fork, not spawn: the children need not re-import torch (~5 s each on
    # 2 busy cores); the parent has no CUDA or gloo state to inherit.
    mp.start_processes(
        _worker,
        args=(free_port(), str(tmp_path)),
        nprocs=WORLD_SIZE,
        join=True,
        start_method='fork')
    results = [np.load(tmp_path / f'rank{r}.npz') for r in range(WORLD_SIZE)]
    # The broadcast seed and the global list agree across ranks.
    assert results[0]['seed'] == results[1]['seed']
    global_list = results[0]['global_list']
    np.testing.assert_array_equal(global_list, results[1]['global_list'])
    # 11 samples rounded up to 12: 6 per rank.
    assert global_list.shape == (12, )
    for rank, result in enumerate(results):
        assert result['length'] == 6
        np.testing.assert_array_equal(result['shard'],
                                      global_list[rank::WORLD_SIZE])
        np.testing.assert_array_equal(result['gathered'][rank],
                                      result['shard'])
    interleaved = results[0]['gathered'].T.reshape(-1)
    np.testing.assert_array_equal(interleaved, global_list)
