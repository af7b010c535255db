"""Downstream use in the real libraries: segmentation_models_pytorch and torchvision detection (clients.md).

One backbone per family (tests/model_matrix.py CLIENT_MODELS); families join by listing a model there.
"""
import pytest
import segmentation_models_pytorch as smp
import torch
from torchvision.models.detection import FasterRCNN

import timm_tricks  # noqa: F401  (registers our models, so smp finds tu-<name>)
from timm_tricks.detection import faster_rcnn_backbone

from model_matrix import CLIENT_MATRIX


def _segmentation_step(model, size=64):
    """Eval forward has the input's size; one training step gives a finite loss and grads everywhere."""
    x = torch.randn(2, 3, size, size)
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 2, size, size) and torch.isfinite(out).all()
    model.train()
    target = torch.randint(0, 2, (2, size, size))
    loss = torch.nn.functional.cross_entropy(model(x), target)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.encoder.parameters())


@pytest.mark.parametrize('name', CLIENT_MATRIX)
@pytest.mark.parametrize('decoder', ['Unet', 'FPN'])
def test_smp_decoders(name, decoder):
    torch.manual_seed(0)
    model = getattr(smp, decoder)(f'tu-{name}', encoder_weights=None, classes=2)
    assert model.encoder.out_channels[1:] == timm_tricks_feature_channels(name)
    _segmentation_step(model)


@pytest.mark.parametrize('name', CLIENT_MATRIX)
def test_smp_deeplabv3_output_stride_8(name):
    torch.manual_seed(0)
    model = smp.DeepLabV3(f'tu-{name}', encoder_weights=None, classes=2, encoder_output_stride=8)
    feats = model.encoder(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [64, 32, 16, 8, 8, 8]
    _segmentation_step(model)


def timm_tricks_feature_channels(name):
    import timm
    with torch.device('meta'):
        return timm.create_model(name, features_only=True).feature_info.channels()


@pytest.mark.parametrize('name', CLIENT_MATRIX)
def test_torchvision_faster_rcnn(name):
    torch.manual_seed(0)
    backbone = faster_rcnn_backbone(name)
    model = FasterRCNN(backbone, num_classes=3, min_size=128, max_size=128)
    images = [torch.rand(3, 128, 128), torch.rand(3, 112, 128)]
    targets = [
        dict(boxes=torch.tensor([[10., 20., 60., 90.]]), labels=torch.tensor([1])),
        dict(boxes=torch.tensor([[30., 30., 100., 100.], [5., 5., 40., 50.]]), labels=torch.tensor([2, 1])),
    ]
    model.train()
    losses = model(images, targets)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None for p in backbone.body.parameters())  # DDP without find_unused_parameters

    model.eval()
    with torch.no_grad():
        detections = model(images)
    assert len(detections) == 2 and all({'boxes', 'labels', 'scores'} <= set(d) for d in detections)
