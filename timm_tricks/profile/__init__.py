"""FLOP (MAC), parameter and latency reports: complete fvcore counts, CPU/GPU latency, and the model-zoo report."""
from .errors import DeviceUnavailableError, MissingDependencyError, ProfileOutOfMemoryError
from .flops import CONV_LINEAR_OPERATORS, FlopCount, count_flops
from .handles import ZERO_COST_OPS
from .latency import PEAK_MEMORY_CUDA, PEAK_MEMORY_PROCESS_RSS, LatencyResult, measure_latency
from .params import ParamCount, count_params
from .report import (
    FORMATS, PROFILE_COLUMNS, TIMM_BENCHMARK_COLUMNS, ModelProfile, format_profile, format_rows, profile_model,
)
from .zoo import ZOO_COLUMNS, ZooReport, benchmark_file_stem, run_zoo, zoo_models

__all__ = [
    'CONV_LINEAR_OPERATORS', 'DeviceUnavailableError', 'FORMATS', 'FlopCount', 'LatencyResult',
    'MissingDependencyError', 'ModelProfile', 'PEAK_MEMORY_CUDA', 'PEAK_MEMORY_PROCESS_RSS', 'PROFILE_COLUMNS',
    'ParamCount', 'ProfileOutOfMemoryError', 'TIMM_BENCHMARK_COLUMNS', 'ZERO_COST_OPS', 'ZOO_COLUMNS', 'ZooReport',
    'benchmark_file_stem', 'count_flops', 'count_params', 'format_profile', 'format_rows', 'measure_latency',
    'profile_model', 'run_zoo', 'zoo_models',
]
