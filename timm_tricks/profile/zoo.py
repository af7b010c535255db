"""The model-zoo report: our registered models (and timm baselines) profiled with one setup, in one or more runtimes
side by side, written as a CSV with timm's benchmark columns plus ours, a Markdown table, and – where matplotlib is
installed – plots of reported top-1 against GMACs and latency."""
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import timm
import torch
from tqdm import tqdm

from .._registry import list_models, resolve_model_name
from ..errors import TricksError
from ..weights import reported_top1
from .errors import ReportNotWritableError
from .plots import PLOTS_EXTRA_HINT, matplotlib_available, plot_top1
from .report import PEAK_MEMORY_NOTES, PROFILE_COLUMNS, Row, format_rows, profile_model, runtime_setups
from .setup import ProfileSetup

ZOO_COLUMNS = PROFILE_COLUMNS + ('throughput_ratio', 'reported_top1', 'baseline')
MARKDOWN_COLUMNS = (
    'model', 'family', 'runtime', 'reported_top1', 'param_count', 'infer_gmacs', 'conv_linear_gmacs',
    'infer_step_time', 'infer_step_time_p90', 'infer_samples_per_sec', 'throughput_ratio', 'peak_mem_mb',
)


@dataclass(frozen=True)
class ZooReport:
    rows: List[Row]  # columns ZOO_COLUMNS; per model, one row per runtime
    csv_path: Path
    markdown_path: Path
    plot_paths: Tuple[Path, ...]  # top-1 vs GMACs, top-1 vs latency (of the first runtime); none without matplotlib


def zoo_models(pattern: str = '*', baselines: Sequence[str] = ()) -> List[Tuple[str, bool]]:
    """(name, is_baseline) for our models matching `pattern` (timm reference members of our families included),
    then the named timm baselines that are not already among them. Unknown baseline names raise at once."""
    ours = list_models(pattern, include_reference=True)
    models = [(name, False) for name in ours]
    for name in baselines:
        name = resolve_model_name(name)
        if name not in ours and (name, True) not in models:
            models.append((name, True))
    return models


def run_zoo(out_dir: Union[str, Path], setup: ProfileSetup = ProfileSetup(), runtimes: Optional[Sequence[str]] = None,
            pattern: str = '*', baselines: Sequence[str] = (), batch_size: int = 1, progress: bool = True) -> ZooReport:
    """Profile every model of `zoo_models(pattern, baselines)` with `profile_model` at one batch size, in each of
    `runtimes` (default: `setup.runtime`; `throughput_ratio` is relative to the first), and write `<stem>.csv`,
    `<stem>.md` and, if matplotlib is installed, `<stem>-top1-vs-gmacs.png` and `<stem>-top1-vs-latency.png` to
    `out_dir`, where the stem records the setup (see `benchmark_file_stem`). Reported top-1 comes from
    `timm_tricks.weights`; the baselines' stays empty (it is timm's to report, not ours).

    Everything that can fail before the long run is checked first: `out_dir` writable, runtimes available, model
    names known. Without matplotlib the plots are skipped with a warning."""
    out_dir = _writable_dir(out_dir)
    setups = runtime_setups(setup, runtimes)
    models = zoo_models(pattern, baselines)
    if not models:
        raise TricksError(f"No model of ours matches '{pattern}' and no baselines were given.")
    plots = matplotlib_available()
    if not plots:
        warnings.warn(f'matplotlib is not installed: the zoo plots are skipped, the CSV and Markdown written. '
                      f'For the plots: {PLOTS_EXTRA_HINT}', stacklevel=2)
    runtimes = [s.runtime for s in setups]
    rows = []
    bar = tqdm(models, desc='zoo', unit='model', disable=not progress)
    for name, baseline in bar:
        bar.set_postfix_str(name)
        for row in profile_model(name, setup, (batch_size,), runtimes).rows():
            row['reported_top1'] = None if baseline else reported_top1(name)
            row['baseline'] = baseline
            rows.append(row)

    stem = benchmark_file_stem(setup, batch_size, runtimes)
    csv_path = out_dir / f'{stem}.csv'
    csv_path.write_text(format_rows(rows, 'csv', ZOO_COLUMNS), encoding='utf-8')
    markdown_path = out_dir / f'{stem}.md'
    header = _setup_text(setups, rows)
    markdown_path.write_text(f'{header}\n\n' + format_rows(rows, 'markdown', MARKDOWN_COLUMNS), encoding='utf-8')
    plot_paths = ()
    if plots:
        first_runtime = [r for r in rows if r['runtime'] == runtimes[0]]
        title = (f"{rows[0]['device_name']}, {setup.precision}, {setup.layout}, {runtimes[0]}, batch {batch_size}, "
                 f"input {rows[0]['infer_img_size']}")
        plot_paths = (
            plot_top1(first_runtime, 'infer_gmacs', 'GMACs per image (fvcore, batch 1)',
                      out_dir / f'{stem}-top1-vs-gmacs.png', title),
            plot_top1(first_runtime, 'infer_step_time', f'median latency per batch of {batch_size} (ms)',
                      out_dir / f'{stem}-top1-vs-latency.png', title),
        )
    return ZooReport(rows, csv_path, markdown_path, plot_paths)


def benchmark_file_stem(setup: ProfileSetup, batch_size: int, runtimes: Optional[Sequence[str]] = None) -> str:
    """timm's `benchmark-infer-<precision>-<layout>-pt<ver>[-cu<ver>]-<device>[-dynamo]`, plus the runtimes other
    than eager alone (`compiled` is timm's `dynamo`), batch size and input size, e.g.
    `benchmark-infer-amp-bf16-nhwc-pt2141-cu130-h100_80gb_hbm3-dynamo-bs256-224` or
    `benchmark-infer-fp32-nchw-pt2141-cpu-eager-fused-onnxruntime-bs8-224`."""
    parts = ['benchmark-infer', setup.precision.replace('_', '-'), setup.layout,
             'pt' + torch.__version__.split('+')[0].replace('.', '')]
    device = setup.device
    if device.type == 'cuda':
        gpu = re.sub(r'^nvidia ', '', torch.cuda.get_device_name(device).lower())
        parts += ['cu' + torch.version.cuda.replace('.', ''), re.sub(r'[^a-z0-9]+', '_', gpu).strip('_')]
    else:
        parts.append('cpu')
    runtimes = list(runtimes or (setup.runtime,))
    if runtimes != ['eager']:
        parts += ['dynamo' if runtime == 'compiled' else runtime for runtime in runtimes]
    height, width = setup.input_size[1:]
    parts += [f'bs{batch_size}', str(height) if height == width else f'{height}x{width}']
    return '-'.join(parts)


def _writable_dir(out_dir: Union[str, Path]) -> Path:
    """`out_dir`, created if needed and checked writable with a scratch file, so that a long run does not end in
    a failed write."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as error:
        raise ReportNotWritableError(
            f"Cannot write the report to '{out_dir}': {error.strerror or error}. Choose another --out.") from None
    return out_dir


def _setup_text(setups: Sequence[ProfileSetup], rows: Sequence[Row]) -> str:
    setup, row = setups[0], rows[0]
    versions = f'torch {torch.__version__}, timm {timm.__version__}'
    if setup.device.type == 'cuda':
        versions += f', CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}'
    if 'onnxruntime' in {s.runtime for s in setups}:
        import onnxruntime  # installed: the setup checked it
        versions += f', onnxruntime {onnxruntime.__version__}'
    runtimes = ', '.join(s.runtime for s in setups)
    kinds = dict.fromkeys(r['peak_mem_kind'] for r in rows)
    return (
        f"# timm_tricks model zoo on {row['device_name']} ({row['device']})\n\n"
        f"{setup.precision}, {setup.layout}, runtimes {runtimes}, {row['threads']} intra-op thread(s), "
        f"batch {row['infer_batch_size']}, input {row['infer_img_size']}; {versions}; "
        f"{setup.warmup} warm-up + {setup.iters} timed iterations. `infer_step_time` / `_p90`: median / 90th "
        f"percentile ms per batch; `throughput_ratio`: images/s over those of the same model in "
        f"{setups[0].runtime}; GMACs: fvcore at batch 1 (GFLOPs = 2 × GMACs); `peak_mem_mb`: "
        + ', '.join(f'{PEAK_MEMORY_NOTES[kind]} ({kind})' for kind in kinds) +
        "; `reported_top1`: published ImageNet-1k top-1 of the released weights, not measured here (empty for "
        "timm baselines and untrained models)."
    )
