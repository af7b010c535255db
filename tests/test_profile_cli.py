"""`timm-tricks profile` and `timm-tricks zoo` end to end, with tiny models and settings."""
import csv
import io
import json
import sys

import pytest
import torch
from PIL import Image

import timm_tricks
from timm_tricks.cli import main
from timm_tricks.profile import PROFILE_COLUMNS, TIMM_BENCHMARK_COLUMNS, ZOO_COLUMNS

TINY = ['--input-size', '3,32,32', '--warmup', '1', '--iters', '2']
TEST_RESNET_PARAMS = 470_376  # timm's `test_resnet`: sum(p.numel() for p in model.parameters())
# the smallest of our registered models, if any, for the zoo run
OURS_SMALL = [n for n in ('csppeleenet', 'spconv_resnet18', 'pyconv_resnet18') if n in timm_tricks.list_models()][:1]


@pytest.fixture(autouse=True, scope='module')
def one_cpu_thread():
    """One intra-op thread, as in test_profile.py: torch's spinning OpenMP threads slow these runs down 10x on a
    loaded 2-core machine, and no test asserts on the latencies measured."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_profile_csv(capsys):
    code, out, _ = run_cli(capsys, 'profile', 'test_resnet', '--batch-size', '1,2', '--format', 'csv', *TINY)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == list(PROFILE_COLUMNS)
    assert [int(r['infer_batch_size']) for r in rows] == [1, 2]
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
    assert latency_lines[0].split() == ['batch', 'median', 'ms', 'p90', 'ms', 'images/s', 'peak', 'MB']
    assert [line.split()[0] for line in latency_lines[1:3]] == ['1', '3']


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
    assert rows[-1]['reported_top1'] == '' and rows[-1]['family'] == 'timm'
    for row, name in zip(rows, OURS_SMALL):
        assert row['family'] == timm_tricks.model_family(name)

    markdown = (tmp_path / f'{stem}.md').read_text(encoding='utf-8')
    assert markdown.startswith('# timm_tricks model zoo on ')
    assert markdown.splitlines()[-1].startswith('| test_resnet | timm |  | 0.47 |')

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


def test_zoo_without_matplotlib(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'matplotlib', None)  # makes `import matplotlib` raise ImportError
    code, _, err = run_cli(capsys, 'zoo', '--baselines', 'test_resnet', '--out', str(tmp_path))
    assert code == 2
    assert 'pip install matplotlib' in err
    assert list(tmp_path.iterdir()) == []  # refused before profiling anything
