"""ONNX export: one model per family through onnxruntime against torch, the DCN -> DeformConv translation, the CLI
and the errors for what cannot be exported."""
import pytest
import timm
import torch
from torch import nn

import timm_tricks  # noqa: F401  (registers the models)
from timm_tricks.cli import main
from timm_tricks.errors import ExportError
from timm_tricks.export import check_onnx, export_onnx
from timm_tricks.layers import ModulatedDeformConv2d

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

SIZE = (3, 64, 64)
TOLERANCE = 1e-4  # max |onnxruntime - torch| / max |torch| on the logits
FAMILY_MODELS = [
    'pyconv_resnet18', 'spconv_resnet18', 'oct_resnet26', 'blurpool_resnet18', 'dcnv2_resnet50',
    'ghost_resnet50_s4', 'cspdensenet121',
]


def _randomized(name, num_classes=16, **kwargs):
    """Random weights with non-trivial BN statistics and, for DCN, offsets of about a pixel and masks != 0.5, so the
    comparison sees every branch; eval mode. The DCN offsets come mostly from conv_offset's bias: offsets that swing
    with the features make a random 16-block net chaotic (float32 torch kernels then differ from float64 by 1e-3)."""
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=num_classes, **kwargs)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
        elif isinstance(m, ModulatedDeformConv2d):
            nn.init.normal_(m.conv_offset.weight, std=0.01)
            nn.init.normal_(m.conv_offset.bias, std=1.0)
    return model.eval()


@pytest.mark.parametrize('name', FAMILY_MODELS)
def test_onnxruntime_equals_torch(name, tmp_path):
    """Dynamic batch, checked at batch 1 and 2."""
    model = _randomized(name)
    path = export_onnx(model, tmp_path / f'{name}.onnx', input_size=SIZE, dynamic_batch=True)
    checks = check_onnx(model, path, [(1, *SIZE), (2, *SIZE)])
    assert [c.input_shape for c in checks] == [(1, *SIZE), (2, *SIZE)]
    for check in checks:
        assert check.max_rel_diff <= TOLERANCE, check


def test_deformable_convs_become_deform_conv(tmp_path):
    """Each of R-50-DCNv2's 13 deformable layers is an ONNX DeformConv with its mask (5 inputs), stride and
    offset groups; a wrong offset order or a missing mask would show in the round trip above."""
    model = _randomized('dcnv2_resnet50', deform_groups=4)
    path = export_onnx(model, tmp_path / 'dcn.onnx', input_size=SIZE)
    graph = onnx.load(str(path)).graph
    nodes = [n for n in graph.node if n.op_type == 'DeformConv']
    assert len(nodes) == 13
    assert all(len(n.input) == 5 for n in nodes)
    attrs = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in nodes]
    assert all(a['offset_group'] == 4 and a['pads'] == [1, 1, 1, 1] for a in attrs)
    assert sorted(a['strides'] == [2, 2] for a in attrs).count(True) == 3  # first block of layer2, 3 and 4
    assert check_onnx(model, path, [(1, *SIZE)])[0].max_rel_diff <= TOLERANCE


def test_cli_export_fused_checkpoint(tmp_path, capsys):
    """`timm-tricks export` end to end: our weights from a state-dict file, fused, dynamic batch, check printed."""
    model = _randomized('spconv_resnet18', num_classes=1000)
    checkpoint = tmp_path / 'weights.pth'
    torch.save(model.state_dict(), checkpoint)
    out = tmp_path / 'new_folder' / 'spconv.onnx'
    assert main(['export', 'spconv_resnet18', str(out), '--input-size', '3,64,64', '--dynamic-batch', '--fused',
                 '--checkpoint', str(checkpoint)]) == 0
    printed = capsys.readouterr().out
    assert f'wrote {out}' in printed and 'fused' in printed and 'check passed' in printed
    assert 'at 1x3x64x64' in printed and 'at 2x3x64x64' in printed
    # the file holds the checkpoint's weights, not a fresh init: it matches the saved model
    assert check_onnx(model, out, [(2, *SIZE)])[0].max_rel_diff <= TOLERANCE

    torch.save(_randomized('spconv_resnet18', num_classes=16).state_dict(), checkpoint)
    assert main(['export', 'spconv_resnet18', str(out), '--checkpoint', str(checkpoint)]) == 2
    assert f'{checkpoint} does not load into spconv_resnet18' in capsys.readouterr().err


def test_clear_errors(tmp_path, capsys):
    model = _randomized('dcnv2_resnet50')
    with pytest.raises(ExportError, match=r'dcnv2_resnet50: layer2\.0\.conv2 .*deform_conv2d.* opset >= 19'):
        export_onnx(model, tmp_path / 'dcn.onnx', input_size=SIZE, opset=18)

    a_file = tmp_path / 'a_file'
    a_file.write_text('not a folder')
    assert main(['export', 'resnet18', str(a_file / 'model.onnx')]) == 2
    assert f'cannot write the ONNX file {a_file / "model.onnx"}' in capsys.readouterr().err

    class Eigen(nn.Module):  # no ONNX operator computes eigenvalues
        def forward(self, x):
            return torch.linalg.eigvalsh(x[:, :, :4, :4] @ x[:, :, :4, :4].transpose(-1, -2))

    path = tmp_path / 'eigen.onnx'
    with pytest.raises(ExportError, match=r"Eigen could not be exported to ONNX opset 19: .*'aten::linalg_eigvalsh'"):
        export_onnx(Eigen(), path, input_size=(2, 6, 6))
    assert not path.exists()
