"""CSP-DenseNet references: plain functional forwards of the spec's topology (csp_densenet.md §3) on
`torch.nn.functional`, fed with a state dict by key (no code, cfg or weights exist from the authors, §0).
"""
import torch
import torch.nn.functional as F


def _bn(x, sd, p):
    return F.batch_norm(x, sd[f'{p}.running_mean'], sd[f'{p}.running_var'], sd[f'{p}.weight'], sd[f'{p}.bias'],
                        False, 0., 1e-5)


def cbr(x, sd, p, stride=1, padding=0):
    """post-activation conv-BN-ReLU (PeleeNet)"""
    return F.relu(_bn(F.conv2d(x, sd[f'{p}.conv.weight'], stride=stride, padding=padding), sd, f'{p}.norm'))


def _brc(x, sd, norm, conv, padding=0):
    """pre-activation BN-ReLU-conv (DenseNet)"""
    return F.conv2d(F.relu(_bn(x, sd, norm)), sd[f'{conv}.weight'], padding=padding)


def reference_csppeleenet(x, sd):
    x = cbr(x, sd, 'stem', stride=2, padding=1)
    # PeleeNet stem block as the original: floor max-pool 2x2 (runs at even sizes only)
    x = torch.cat([F.max_pool2d(x, 2, 2), cbr(cbr(x, sd, 'stem_down.stem2a'), sd, 'stem_down.stem2b', 2, 1)], 1)
    x = cbr(x, sd, 'stem_down.stem3')
    for i, n in enumerate((3, 4, 8, 6), start=1):
        half = x.shape[1] // 2
        dense, skip = x[:, :half], x[:, half:]
        for j in range(n):
            p = f'layer{i}.blocks.{j}'
            b1 = cbr(cbr(dense, sd, f'{p}.branch1a'), sd, f'{p}.branch1b', padding=1)
            b2 = cbr(cbr(cbr(dense, sd, f'{p}.branch2a'), sd, f'{p}.branch2b', padding=1), sd, f'{p}.branch2c',
                      padding=1)
            dense = torch.cat([dense, b1, b2], 1)
        x = torch.cat([skip, cbr(dense, sd, f'layer{i}.transition_b')], 1)
        if i < 4:
            x = F.avg_pool2d(x, 2, 2)  # pool before the final transition
        x = cbr(x, sd, f'transition{i}')
        assert x.shape[1] == (128, 256, 512, 704)[i - 1]
    return F.linear(x.mean((2, 3)), sd['fc.weight'], sd['fc.bias'])


def reference_cspdensenet(x, sd, block_config):
    x = F.relu(_bn(F.conv2d(x, sd['stem.conv.weight'], stride=2, padding=3), sd, 'stem.norm'))
    x = F.max_pool2d(x, 3, 2, 1)
    for i, n in enumerate(block_config, start=1):
        half = x.shape[1] // 2
        dense, skip = x[:, :half], x[:, half:]
        for j in range(n):
            p = f'layer{i}.blocks.{j}'
            new = _brc(dense, sd, f'{p}.norm1', f'{p}.conv1')
            new = _brc(new, sd, f'{p}.norm2', f'{p}.conv2', padding=1)
            dense = torch.cat([dense, new], 1)
        x = torch.cat([skip, _brc(dense, sd, f'layer{i}.transition_b.norm', f'layer{i}.transition_b.conv')], 1)
        x = F.relu(_bn(x, sd, f'transition{i}.norm'))
        if i < 4:
            x = F.avg_pool2d(x, 2, 2)
        x = F.conv2d(x, sd[f'transition{i}.conv.weight'])
    x = F.relu(_bn(x, sd, 'final_norm.norm'))
    return F.linear(x.mean((2, 3)), sd['fc.weight'], sd['fc.bias'])
