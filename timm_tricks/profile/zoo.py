"""The model-zoo report: our registered models (and timm baselines) profiled with one setup, written as a CSV with
timm's benchmark columns plus ours, a Markdown table, and plots of reported top-1 against GMACs and latency."""
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import timm
import torch
from tqdm import tqdm

from .._registry import list_models, resolve_model_name
from ..errors import TricksError
from ..weights import reported_top1
from ._models import InputSize
from .latency import AmpDtype, precision_name, resolve_device
from .plots import plot_top1, require_matplotlib
from .report import PROFILE_COLUMNS, Row, format_rows, profile_model

ZOO_COLUMNS = PROFILE_COLUMNS + ('reported_top1', 'baseline')
MARKDOWN_COLUMNS = (
    'model', 'family', 'reported_top1', 'param_count', 'infer_gmacs', 'conv_linear_gmacs', 'infer_step_time',
    'infer_step_time_p90', 'infer_samples_per_sec', 'peak_mem_mb',
)


@dataclass(frozen=True)
class ZooReport:
    rows: List[Row]  # columns ZOO_COLUMNS
    csv_path: Path
    markdown_path: Path
    plot_paths: Tuple[Path, ...]  # top-1 vs GMACs, top-1 vs latency


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


def run_zoo(
        out_dir: Union[str, Path],
        pattern: str = '*',
        baselines: Sequence[str] = (),
        input_size: InputSize = (3, 224, 224),
        device: Union[str, torch.device] = 'cpu',
        batch_size: int = 1,
        amp_dtype: AmpDtype = None,
        channels_last: bool = False,
        compile: bool = False,
        num_warmup: int = 10,
        num_iters: int = 40,
        progress: bool = True,
) -> ZooReport:
    """Profile every model of `zoo_models(pattern, baselines)` with `profile_model` at one batch size and write
    `<stem>.csv`, `<stem>.md`, `<stem>-top1-vs-gmacs.png` and `<stem>-top1-vs-latency.png` to `out_dir`, where the
    stem records the setup (see `benchmark_file_stem`). Reported top-1 comes from `timm_tricks.weights`; the
    baselines' stays empty (it is timm's to report, not ours)."""
    device = resolve_device(device)  # fail before the long run, not after it
    require_matplotlib()
    models = zoo_models(pattern, baselines)
    if not models:
        raise TricksError(f"No model of ours matches '{pattern}' and no baselines were given.")
    rows = []
    bar = tqdm(models, desc='zoo', unit='model', disable=not progress)
    for name, baseline in bar:
        bar.set_postfix_str(name)
        profile = profile_model(
            name, input_size, (batch_size,), device, amp_dtype, channels_last, compile, num_warmup, num_iters)
        row = profile.rows()[0]
        row['reported_top1'] = None if baseline else reported_top1(name)
        row['baseline'] = baseline
        rows.append(row)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = benchmark_file_stem(precision_name(amp_dtype), channels_last, device, compile, batch_size, input_size)
    csv_path = out_dir / f'{stem}.csv'
    csv_path.write_text(format_rows(rows, 'csv', ZOO_COLUMNS), encoding='utf-8')
    markdown_path = out_dir / f'{stem}.md'
    header = _setup_text(rows[0], num_warmup, num_iters)
    markdown_path.write_text(f'{header}\n\n' + format_rows(rows, 'markdown', MARKDOWN_COLUMNS), encoding='utf-8')
    title = (f"{rows[0]['device_name']}, {rows[0]['dtype']}, {rows[0]['layout']}, batch {batch_size}, "
             f"input {rows[0]['infer_img_size']}")
    plot_paths = (
        plot_top1(rows, 'infer_gmacs', 'GMACs per image (fvcore, batch 1)', out_dir / f'{stem}-top1-vs-gmacs.png',
                  title),
        plot_top1(rows, 'infer_step_time', f'median latency per batch of {batch_size} (ms)',
                  out_dir / f'{stem}-top1-vs-latency.png', title),
    )
    return ZooReport(rows, csv_path, markdown_path, plot_paths)


def benchmark_file_stem(
        precision: str,
        channels_last: bool,
        device: torch.device,
        compiled: bool,
        batch_size: int,
        input_size: InputSize,
) -> str:
    """timm's `benchmark-infer-<precision>-<layout>-pt<ver>[-cu<ver>]-<device>[-dynamo]`, plus batch size and input
    size, e.g. `benchmark-infer-amp-bf16-nhwc-pt2141-cu130-h100_80gb_hbm3-dynamo-bs256-224`."""
    parts = ['benchmark-infer', precision.replace('_', '-'), 'nhwc' if channels_last else 'nchw',
             'pt' + torch.__version__.split('+')[0].replace('.', '')]
    if device.type == 'cuda':
        gpu = re.sub(r'^nvidia ', '', torch.cuda.get_device_name(device).lower())
        parts += ['cu' + torch.version.cuda.replace('.', ''), re.sub(r'[^a-z0-9]+', '_', gpu).strip('_')]
    else:
        parts.append('cpu')
    if compiled:
        parts.append('dynamo')
    height, width = input_size[1:]
    parts += [f'bs{batch_size}', str(height) if height == width else f'{height}x{width}']
    return '-'.join(parts)


def _setup_text(row: Row, num_warmup: int, num_iters: int) -> str:
    versions = f'torch {torch.__version__}, timm {timm.__version__}'
    if row['device'].startswith('cuda'):
        versions += f', CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}'
    return (
        f"# timm_tricks model zoo on {row['device_name']} ({row['device']})\n\n"
        f"{row['dtype']}, {row['layout']}, {'torch.compile' if row['compiled'] else 'eager'}, "
        f"batch {row['infer_batch_size']}, input {row['infer_img_size']}; {versions}; "
        f"{num_warmup} warm-up + {num_iters} timed iterations. `infer_step_time` / `_p90`: median / 90th percentile "
        f"ms per batch; GMACs: fvcore at batch 1 (GFLOPs = 2 × GMACs); `reported_top1`: published ImageNet-1k "
        f"top-1 of the released weights, not measured here (empty for timm baselines and untrained models)."
    )
