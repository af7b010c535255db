"""The benchmark scripts run end to end (tiny inputs, one repetition; nothing here is timed): a script that only
breaks after its first measurement, as one did, fails here instead of after minutes on a benchmark machine."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / 'benchmarks'
TINY = ['--reps', '1', '--warmup', '0', '--batch', '1', '--size', '32', '--threads', '1']
SCRIPTS = {  # script -> its own arguments, kept small
    'blurpool_resnet_cpu.py': [],
    'ghost_resnet_cpu.py': [],
    'dcn_cpu.py': [],
    'dcn_fast_cpu.py': [],
    'spconv_cpu.py': ['--merge', 'auto', 'kxk'],
    'onnx_cpu.py': ['--models', 'pyconv_resnet18'],
}


def test_every_timing_script_is_covered():
    uses_timing_parser = {p.name for p in BENCHMARKS.glob('*.py') if 'common.timing_parser(' in p.read_text()}
    # vs_authors.py needs the authors' checkouts (--authors-root), which only a benchmark machine has
    assert uses_timing_parser - set(SCRIPTS) == {'vs_authors.py'}


@pytest.mark.parametrize('script', SCRIPTS)
def test_benchmark_script_runs(script, tmp_path):
    out = tmp_path / 'report.md'
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *TINY, *SCRIPTS[script], '--out', str(out)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = out.read_text(encoding='utf-8')
    assert report.startswith('# ') and f'benchmarks/{script}' in report
