"""FLOP (MAC), parameter and latency reports: complete fvcore counts, CPU/GPU latency in several runtimes, and the
model-zoo report."""
from .errors import (
    DeviceUnavailableError,
    InvalidSetupError,
    MissingDependencyError,
    ProfileOutOfMemoryError,
    ReportNotWritableError,
)
from .flops import CONV_LINEAR_OPERATORS, FlopCount, count_flops
from .handles import ZERO_COST_OPS
from .latency import PEAK_MEMORY_CPU, PEAK_MEMORY_CUDA, PEAK_MEMORY_NOT_MEASURED, LatencyResult, measure_latency
from .params import ParamCount, count_params
from .report import (
    FORMATS,
    PROFILE_COLUMNS,
    TIMM_BENCHMARK_COLUMNS,
    ModelProfile,
    format_profile,
    format_rows,
    profile_model,
)
from .setup import RUNTIMES, ProfileSetup
from .zoo import ZOO_COLUMNS, ZooReport, benchmark_file_stem, run_zoo, zoo_models

__all__ = [
    'CONV_LINEAR_OPERATORS', 'DeviceUnavailableError', 'FORMATS', 'FlopCount', 'InvalidSetupError', 'LatencyResult',
    'MissingDependencyError', 'ModelProfile', 'PEAK_MEMORY_CPU', 'PEAK_MEMORY_CUDA', 'PEAK_MEMORY_NOT_MEASURED',
    'PROFILE_COLUMNS', 'ParamCount', 'ProfileOutOfMemoryError', 'ProfileSetup', 'RUNTIMES', 'ReportNotWritableError',
    'TIMM_BENCHMARK_COLUMNS', 'ZERO_COST_OPS', 'ZOO_COLUMNS', 'ZooReport', 'benchmark_file_stem', 'count_flops',
    'count_params', 'format_profile', 'format_rows', 'measure_latency', 'profile_model', 'run_zoo', 'zoo_models',
]
