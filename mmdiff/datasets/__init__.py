"""Data sets of mmdiff."""
from .data_files import DataFilesNotFoundError, check_data_files
from .dataset_walk import UnsupportedDatasetError, index_dataset
from .sample_idx import (SampleIdxMissingError,
                         check_pipeline_keeps_sample_idx,
                         install_global_sample_idx)
from .synthetic import SyntheticLVISV1Dataset
from .synthetic.make import (ensure_synthetic_lvis, make_synthetic_lvis,
                             synthetic_lvis_metainfo)

__all__ = [
    'make_synthetic_lvis', 'ensure_synthetic_lvis', 'synthetic_lvis_metainfo',
    'SyntheticLVISV1Dataset', 'DataFilesNotFoundError', 'check_data_files',
    'index_dataset', 'install_global_sample_idx', 'UnsupportedDatasetError',
    'SampleIdxMissingError', 'check_pipeline_keeps_sample_idx'
]
