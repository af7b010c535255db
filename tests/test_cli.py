"""`timm-tricks list` / `info`, run as the installed console script would run them."""
import subprocess
import sys

import pytest


def _cli(*args):
    return subprocess.run([sys.executable, '-m', 'timm_tricks', *args], capture_output=True, text=True, timeout=300)


def test_list_shows_exact_sizes_and_tags():
    out = _cli('list', 'pyconv*')
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert len(rows) == 8
    assert '24.85' in rows['pyconv_resnet50'] and 'in1k, aug_in1k' in rows['pyconv_resnet50']
    assert '5.91' in rows['pyconv_resnet18'] and rows['pyconv_resnet18'].rstrip().endswith('-')


def test_info_prints_cfg_features_and_origin():
    out = _cli('info', 'pyconv_resnet50.aug_in1k')
    assert out.returncode == 0, out.stderr
    assert '"test_input_size": [\n    3,\n    320,\n    320\n  ]' in out.stdout
    assert '  4   2048   32  layer4' in out.stdout
    assert 'hf_hub_id: timm-tricks/pyconv_resnet50.aug_in1k' in out.stdout
    assert 'download_url: https://drive.google.com/' in out.stdout


@pytest.mark.parametrize('args, expected', [
    (('info', 'pyconv_resnt50'), 'Did you mean: pyconv_resnet50'),
    (('info', 'pyconv_resnet50.in22k'), "no tag 'in22k'. Tags with weights: in1k, aug_in1k"),
    (('list', 'nothing_like_this*'), "No model matches"),
])
def test_bad_names_exit_non_zero_with_a_hint(args, expected):
    out = _cli(*args)
    assert out.returncode != 0
    assert expected in out.stderr + out.stdout
    assert 'Traceback' not in out.stderr
