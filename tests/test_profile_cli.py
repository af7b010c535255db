"""`timm-tricks profile` and `timm-tricks zoo` end to end, with tiny models and settings."""
import csv
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import timm_tricks
from timm_tricks.cli import main
from timm_tricks.profile import PROFILE_COLUMNS, TIMM_BENCHMARK_COLUMNS, ZOO_COLUMNS

REPO_ROOT = Path(__file__).resolve().parents[1]

TINY = ['--input-size', '3,32,32', '--warmup', '1', '--iters', '2']
TEST_RESNET_PARAMS = 470_376  # timm's `test_resnet`: sum(p.numel() for p in model.parameters())
# the smallest of our registered models, if any, for the zoo run
OURS_SMALL = [n for n in ('csppeleenet', 'spconv_resnet18', 'pyconv_resnet18') if n in timm_tricks.list_models()][:1]
pytestmark = pytest.mark.usefixtures('one_cpu_thread')  # nothing here is timed


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_profile_csv(capsys):
    code, out, _ = run_cli(capsys, 'profile', 'test_resnet', '--batch-size', '1,2', '--format', 'csv', *TINY)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == list(PROFILE_COLUMNS)
    assert PROFILE_COLUMNS[:len(TIMM_BENCHMARK_COLUMNS) + 1] == TIMM_BENCHMARK_COLUMNS + ('runtime',)
    assert [(int(r['infer_batch_size']), r['runtime']) for r in rows] == [(1, 'eager'), (2, 'eager')]
    for row in rows:
        assert float(row['param_count']) == pytest.approx(TEST_RESNET_PARAMS / 1e6, abs=5e-4)
        assert (row['infer_img_size'], row['device'], row['dtype'], row['layout']) == ('32', 'cpu', 'fp32', 'nchw')
        assert float(row['infer_step_time_p90']) >= float(row['infer_step_time']) > 0


def test_profile_json_and_markdown(capsys):
    code, out, _ = run_cli(capsys, 'profile', 'test_resnet', '--format', 'json', '--amp', 'bf16', *TINY)
    assert code == 0
    (row,) = json.loads(out)
    assert row['dtype'] == 'amp_bf16' and row['family'] == 'timm' and row['uncounted_ops'] == ''
    code, out, _ = run_cli(capsys, 'profile', 'test_resnet', '--format', 'markdown', '--channels-last', *TINY)
    header, rule, line = out.splitlines()
    assert header == '| ' + ' | '.join(PROFILE_COLUMNS) + ' |'
    assert line.startswith('| test_resnet | 32 |') and '| nhwc |' in line


def test_profile_table(capsys):
    code, out, _ = run_cli(capsys, 'profile', 'test_resnet', '--batch-size', '1,3', *TINY)
    assert code == 0
    assert out.startswith('test_resnet (timm), input 3x32x32\n')
    assert f'parameters   {TEST_RESNET_PARAMS / 1e6:.3f} M total' in out
    assert 'not counted  none' in out
    latency_lines = out.split('iterations:\n')[1].splitlines()
    assert latency_lines[0].split() == ['runtime', 'batch', 'median', 'ms', 'p90', 'ms', 'images/s', 'peak', 'MB']
    assert [line.split()[:2] for line in latency_lines[1:3]] == [['eager', '1'], ['eager', '3']]
    assert latency_lines[3].startswith('peak MB (cpu_profiler_allocated): weights + peak')


def test_profile_unknown_model(capsys):
    code, _, err = run_cli(capsys, 'profile', 'test_resnnet')
    assert code == 2
    assert err.startswith("error: Unknown model 'test_resnnet'. Did you mean: test_resnet")


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the error raised where CUDA is missing')
def test_profile_cuda_without_cuda(capsys):
    code, _, err = run_cli(capsys, 'profile', 'test_resnet', '--device', 'cuda')
    assert code == 2
    assert err.startswith('error: CUDA was requested')


def test_profile_rejects_a_bad_input_size(capsys):
    with pytest.raises(SystemExit):
        main(['profile', 'test_resnet', '--input-size', '224,224'])
    assert 'is not C,H,W' in capsys.readouterr().err


def test_zoo(capsys, tmp_path):
    pattern = OURS_SMALL[0] if OURS_SMALL else 'no_model_matches_this'
    code, out, _ = run_cli(capsys, 'zoo', '--pattern', pattern, '--baselines', 'test_resnet', '--out',
                           str(tmp_path), '--no-progress', *TINY)
    assert code == 0
    csv_path, markdown_path, *png_paths = out.split()
    stem = f"benchmark-infer-fp32-nchw-pt{torch.__version__.split('+')[0].replace('.', '')}-cpu-bs1-32"
    assert csv_path == str(tmp_path / f'{stem}.csv') and markdown_path == str(tmp_path / f'{stem}.md')

    with open(csv_path, newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(ZOO_COLUMNS) and ZOO_COLUMNS[:len(TIMM_BENCHMARK_COLUMNS)] == TIMM_BENCHMARK_COLUMNS
    assert [(r['model'], r['baseline']) for r in rows] == [(n, 'False') for n in OURS_SMALL] + [('test_resnet', 'True')]
    assert {(r['runtime'], r['throughput_ratio']) for r in rows} == {('eager', '1.0')}
    assert rows[-1]['reported_top1'] == '' and rows[-1]['family'] == 'timm'
    for row, name in zip(rows[:-1], OURS_SMALL, strict=True):  # the last row is the baseline
        assert row['family'] == timm_tricks.model_family(name)

    markdown = (tmp_path / f'{stem}.md').read_text(encoding='utf-8')
    assert markdown.startswith('# timm_tricks model zoo on ')
    assert markdown.splitlines()[-1].startswith('| test_resnet | timm | eager |  | 0.47 |')

    assert [p.rsplit('/', 1)[1] for p in png_paths] == [f'{stem}-top1-vs-gmacs.png', f'{stem}-top1-vs-latency.png']
    for path in png_paths:
        with Image.open(path) as image:
            image.verify()
            assert image.format == 'PNG' and image.size[0] > 100 and image.size[1] > 100


def test_zoo_without_models(capsys, tmp_path):
    code, _, err = run_cli(capsys, 'zoo', '--pattern', 'no_model_matches_this', '--baselines', '', '--out',
                           str(tmp_path))
    assert code == 2
    assert err == "error: No model of ours matches 'no_model_matches_this' and no baselines were given.\n"


def test_zoo_without_matplotlib(tmp_path):
    # a fresh interpreter in which `import matplotlib` fails, as it does where the plots extra is not installed
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from timm_tricks.cli import main\n"
            f"sys.exit(main(['zoo', '--pattern', 'no_model_matches_this', '--baselines', 'test_resnet', "
            f"'--out', {str(tmp_path)!r}, '--no-progress', {', '.join(map(repr, TINY))}]))\n")
    run = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO_ROOT,
                         env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith('warning:')]
    assert warnings == ['warning: matplotlib is not installed: the zoo plots are skipped, the CSV and Markdown '
                        'written. For the plots: pip install "timm-tricks[plots]"']
    written = run.stdout.split()
    assert [Path(p).suffix for p in written] == ['.csv', '.md']
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(p).name for p in written)
    with open(written[0], newline='', encoding='utf-8') as f:
        assert [r['model'] for r in csv.DictReader(f)] == ['test_resnet']


def test_zoo_unwritable_out(capsys, tmp_path):
    regular_file = tmp_path / 'regular_file'
    regular_file.write_text('')
    out = regular_file / 'sub'  # a file's child cannot be created, even by root
    # checked first: the unknown baseline, which would fail next, is not reached
    code, stdout, err = run_cli(capsys, 'zoo', '--baselines', 'test_resnnet', '--out', str(out), '--no-progress')
    assert code == 2 and stdout == ''
    assert err == f"error: Cannot write the report to '{out}': Not a directory. Choose another --out.\n"


@pytest.mark.parametrize('runtimes', [
    'fused,eager',
    pytest.param('eager,onnxruntime', marks=pytest.mark.skipif(
        importlib.util.find_spec('onnxruntime') is None or importlib.util.find_spec('onnx') is None,
        reason='the onnxruntime runtime needs the onnx extra (pip install "timm-tricks[onnx]")')),
])
def test_zoo_runtimes_side_by_side(capsys, tmp_path, runtimes):
    code, out, _ = run_cli(capsys, 'zoo', '--pattern', 'no_model_matches_this', '--baselines', 'test_resnet,resnet18',
                           '--runtimes', runtimes, '--out', str(tmp_path), '--no-progress', '--threads', '1', *TINY)
    assert code == 0
    csv_path = out.split()[0]
    assert f"-cpu-{runtimes.replace(',', '-')}-bs1-32.csv" in csv_path
    with open(csv_path, newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    first, second = runtimes.split(',')
    assert [(r['model'], r['runtime']) for r in rows] == [
        ('test_resnet', first), ('test_resnet', second), ('resnet18', first), ('resnet18', second)]
    for reference, row in zip(rows[::2], rows[1::2]):
        assert reference['throughput_ratio'] == '1.0' and row['threads'] == '1'
        ratio = float(row['infer_samples_per_sec']) / float(reference['infer_samples_per_sec'])
        assert float(row['throughput_ratio']) == pytest.approx(ratio, rel=2e-2, abs=2e-3)  # CSV rounds both
        assert row['param_count'] == reference['param_count'] and row['infer_gmacs'] == reference['infer_gmacs']
    if second == 'onnxruntime':
        assert {(r['peak_mem_mb'], r['peak_mem_kind']) for r in rows[1::2]} == {('', 'not_measured')}


def test_profile_runtime_onnxruntime_is_cpu_only(capsys):
    code, _, err = run_cli(capsys, 'profile', 'test_resnet', '--runtime', 'onnxruntime', '--amp', 'bf16')
    assert code == 2
    assert err.startswith('error: The onnxruntime runtime runs the fp32 model on the CPU')


def test_zoo_rejects_an_unknown_runtime(capsys):
    with pytest.raises(SystemExit):
        main(['zoo', '--out', 'unused', '--runtimes', 'eager,tensorrt'])
    assert "is not a list of runtimes from eager, fused, compiled, onnxruntime" in capsys.readouterr().err
