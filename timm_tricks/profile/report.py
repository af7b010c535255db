"""A model's counts and latencies together, as rows with timm's benchmark columns, in several text formats.

Column conventions follow timm's `benchmark-infer-*.csv` (`param_count` in millions, `infer_gmacs` = fvcore total at
batch 1 in GMACs, `infer_macts` = fvcore activations in millions), except that `infer_step_time` is the *median* ms
per batch and `infer_samples_per_sec` is derived from it (timm uses the mean and the loop's wall time). Our columns
follow, starting with the `runtime` the latency was measured in (see `setup.RUNTIMES`).
"""
import csv
import io
import json
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple, Union

from .._registry import REFERENCE_MODELS, is_ours, model_family
from ._models import InputSize, ModelOrName, load_model
from .errors import InvalidSetupError
from .flops import FlopCount, count_flops
from .latency import PEAK_MEMORY_CPU, PEAK_MEMORY_CUDA, PEAK_MEMORY_NOT_MEASURED, LatencyResult, measure_latency
from .params import ParamCount, count_params
from .setup import ProfileSetup

Row = Dict[str, object]

TIMM_BENCHMARK_COLUMNS = (
    'model', 'infer_img_size', 'infer_samples_per_sec', 'infer_step_time', 'infer_batch_size', 'param_count',
    'infer_gmacs', 'infer_macts',
)
PROFILE_COLUMNS = TIMM_BENCHMARK_COLUMNS + (
    'runtime', 'family', 'device', 'device_name', 'threads', 'dtype', 'layout', 'infer_step_time_p90', 'peak_mem_mb',
    'peak_mem_kind', 'param_count_used', 'conv_linear_gmacs', 'uncounted_ops',
)
FORMATS = ('table', 'csv', 'json', 'markdown')
PEAK_MEMORY_NOTES = {
    PEAK_MEMORY_CUDA: 'weights + peak of torch.cuda.max_memory_allocated during one forward',
    PEAK_MEMORY_CPU: "weights + peak of one forward's allocations (torch.profiler memory events)",
    PEAK_MEMORY_NOT_MEASURED: 'not measured (onnxruntime allocates outside torch)',
}


@dataclass(frozen=True)
class ModelProfile:
    model: str
    family: str  # our family (module name), or 'timm' for timm's own models
    flops: FlopCount
    params: ParamCount
    latencies: Tuple[LatencyResult, ...]  # per runtime, then per batch size

    def rows(self) -> List[Row]:
        """One row per latency, columns `PROFILE_COLUMNS` plus `throughput_ratio`: images/s over those of the first
        runtime at the same batch size (1.0 for the first runtime itself)."""
        reference = {}
        for latency in self.latencies:
            reference.setdefault(latency.requested_batch_size, latency)
        return [self._row(latency, reference[latency.requested_batch_size]) for latency in self.latencies]

    def _row(self, latency: LatencyResult, reference: LatencyResult) -> Row:
        setup = latency.setup
        return {
            'model': self.model,
            'infer_img_size': _img_size(self.flops.input_size),
            'infer_samples_per_sec': round(latency.images_per_sec, 2),
            'infer_step_time': round(latency.median_ms, 3),
            'infer_batch_size': latency.batch_size,
            'param_count': round(self.params.total / 1e6, 3),
            'infer_gmacs': round(self.flops.total / 1e9, 4),
            'infer_macts': round(self.params.activations / 1e6, 3),
            'runtime': setup.runtime,
            'family': self.family,
            'device': str(setup.device),
            'device_name': latency.device_name,
            'threads': latency.threads,
            'dtype': setup.precision,
            'layout': setup.layout,
            'infer_step_time_p90': round(latency.p90_ms, 3),
            'peak_mem_mb': _megabytes(latency.peak_memory_bytes),
            'peak_mem_kind': latency.peak_memory_kind,
            'param_count_used': round(self.params.used_in_forward / 1e6, 3),
            'conv_linear_gmacs': round(self.flops.conv_linear / 1e9, 4),
            'uncounted_ops': _ops_text(self.flops.unsupported_ops),
            'throughput_ratio': round(latency.images_per_sec / reference.images_per_sec, 3),
        }


def profile_model(model_or_name: ModelOrName, setup: ProfileSetup = ProfileSetup(), batch_sizes: Sequence[int] = (1,),
                  runtimes: Optional[Sequence[str]] = None) -> ModelProfile:
    """MACs and parameters (fvcore protocol: eager, fp32, batch 1, where the model is – the CPU for a name) at
    `setup.input_size`, then the latency at each batch size (see `measure_latency`; a model passed in moves to
    `setup.device`) in each of `runtimes` (default: `setup.runtime`), the first being the reference of the rows'
    `throughput_ratio`."""
    setups = runtime_setups(setup, runtimes)  # fail before the slow part
    model, name = load_model(model_or_name)
    flops = count_flops(model, setup.input_size, table_depth=None)  # no per-module table in the rows
    params = count_params(model, setup.input_size)
    latencies = tuple(
        measure_latency(model, runtime_setup, batch_size) for runtime_setup in setups for batch_size in batch_sizes)
    return ModelProfile(name, family_of(name), flops, params, latencies)


def runtime_setups(setup: ProfileSetup, runtimes: Optional[Sequence[str]]) -> List[ProfileSetup]:
    """`setup` once per runtime (each checked, e.g. for onnxruntime being installed), in order."""
    runtimes = list(runtimes or (setup.runtime,))
    if len(set(runtimes)) != len(runtimes):
        raise InvalidSetupError(f'A runtime is named twice in {runtimes}.')
    return [replace(setup, runtime=runtime) for runtime in runtimes]


def family_of(name: str) -> str:
    """Our family of `name`, or 'timm' for one of timm's own models (or a model timm does not know)."""
    arch = name.split('.', 1)[0]
    return model_family(arch) if is_ours(arch) or arch in REFERENCE_MODELS else 'timm'


def format_rows(rows: Sequence[Row], fmt: str, columns: Optional[Sequence[str]] = None) -> str:
    """`rows` as 'csv', 'json', 'markdown' or an aligned text 'table', with `columns` (default: all, in order)."""
    columns = list(columns or (rows[0].keys() if rows else ()))
    if fmt == 'csv':
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, extrasaction='ignore', lineterminator='\n')
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    if fmt == 'json':
        return json.dumps([{c: row.get(c) for c in columns} for row in rows], indent=2) + '\n'
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    if fmt == 'markdown':
        lines = ['| ' + ' | '.join(columns) + ' |', '|' + '|'.join('---' for _ in columns) + '|']
        lines += ['| ' + ' | '.join(line) + ' |' for line in cells]
        return '\n'.join(lines) + '\n'
    if fmt == 'table':
        widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
        lines = ['  '.join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [columns, *cells]]
        return '\n'.join(lines) + '\n'
    raise ValueError(f'Unknown format {fmt!r}; use one of {", ".join(FORMATS)}.')


def format_profile(profile: ModelProfile, fmt: str) -> str:
    """'table': a readable summary (counts, then a latency line per runtime and batch size); other formats:
    `format_rows`."""
    if fmt != 'table':
        return format_rows(profile.rows(), fmt, PROFILE_COLUMNS)
    flops, params = profile.flops, profile.params
    first = profile.latencies[0]
    setup = first.setup
    lines = [
        f'{profile.model} ({profile.family}), input {"x".join(map(str, flops.input_size))}',
        f'parameters   {params.total / 1e6:.3f} M total, {params.trainable / 1e6:.3f} M trainable, '
        f'{params.used_in_forward / 1e6:.3f} M used in forward',
        f'MACs         {flops.total / 1e9:.4f} G fvcore total, {flops.conv_linear / 1e9:.4f} G conv+linear '
        f'(batch 1; GFLOPs = 2 x GMACs)',
        f'activations  {params.activations / 1e6:.3f} M',
        f'not counted  {_ops_text(flops.unsupported_ops) or "none"}',
        f'never called {", ".join(flops.uncalled_modules) or "none"}',
        f'latency on {first.device_name} ({setup.device}), {first.threads} intra-op thread(s), {setup.precision}, '
        f'{setup.layout}, {setup.warmup} warm-up + {setup.iters} timed iterations:',
    ]
    latency_rows = [
        {'runtime': r.setup.runtime, 'batch': r.batch_size, 'median ms': f'{r.median_ms:.3f}',
         'p90 ms': f'{r.p90_ms:.3f}', 'images/s': f'{r.images_per_sec:.2f}',
         'peak MB': _cell(_megabytes(r.peak_memory_bytes))}
        for r in profile.latencies
    ]
    kinds = dict.fromkeys(r.peak_memory_kind for r in profile.latencies)
    peak_notes = ''.join(f'peak MB ({kind}): {PEAK_MEMORY_NOTES[kind]}\n' for kind in kinds)
    return '\n'.join(lines) + '\n' + format_rows(latency_rows, 'table') + peak_notes


def _megabytes(size: Optional[int]) -> Optional[float]:
    return None if size is None else round(size / 2 ** 20, 1)


def _img_size(input_size: InputSize) -> Union[int, str]:
    height, width = input_size[1:]
    return height if height == width else f'{height}x{width}'


def _ops_text(ops: Dict[str, int]) -> str:
    return ' '.join(f'{op}x{count}' for op, count in sorted(ops.items()))


def _cell(value: object) -> str:
    return '' if value is None else str(value)
