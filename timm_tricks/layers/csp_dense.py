"""Cross Stage Partial wrapper for concatenating (dense) blocks (Wang et al., CSPNet, CVPRW 2020, Sec. 3.1).

The stage input is split on channels: the first `round(part_ratio * C)` channels go through the block, the rest
skip it. The block output passes an optional partial transition (`transition_b`) and is concatenated after the
skipped part: `cat(skip, transition_b(block(dense)))`. The stage's final transition (the "fusion" after the
concatenation) is not part of this module, so that the fused tensor can be a feature tap.

Fusion strategies of the paper (Fig. 3): "first + last" = partial transition here and a final transition after;
"first only" = no partial transition here, a final transition after; "last only" = partial transition here and
no final transition after.
"""
from typing import Optional, Tuple

import torch
from timm.models import checkpoint_seq
from torch import nn

__all__ = ['CrossStagePartial', 'partial_split']


def partial_split(chs: int, part_ratio: float) -> Tuple[int, int]:
    """(channels through the block, channels that skip it) for a partial ratio γ; both must be >= 1."""
    if not 0. < part_ratio < 1.:
        raise ValueError(f'part_ratio (γ) must be in (0, 1), got {part_ratio}')
    dense_chs = int(round(part_ratio * chs))
    skip_chs = chs - dense_chs
    if dense_chs < 1 or skip_chs < 1:
        raise ValueError(
            f'part_ratio {part_ratio} splits {chs} channels into {dense_chs} (block) + {skip_chs} (skip); '
            'both parts need at least one channel')
    return dense_chs, skip_chs


class CrossStagePartial(nn.Module):
    """split -> `blocks` on the first part -> `transition_b` -> cat(skipped part, result).

    Args:
        in_chs: stage input channels.
        blocks: sequence of modules run on the first part (checkpointed one by one with grad checkpointing).
        transition_b: partial transition after the blocks, or None (fusion first only).
        part_ratio: γ, the fraction of the channels that goes through the blocks.
    """

    def __init__(self, in_chs: int, blocks: nn.Sequential, transition_b: Optional[nn.Module] = None,
                 part_ratio: float = 0.5):
        super().__init__()
        self.dense_chs, self.skip_chs = partial_split(in_chs, part_ratio)
        self.blocks = blocks
        self.transition_b = transition_b
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, [self.dense_chs, self.skip_chs], dim=1)
        x_dense, x_skip = parts[0], parts[1]
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x_dense = checkpoint_seq(self.blocks, x_dense)
        else:
            x_dense = self.blocks(x_dense)
        if self.transition_b is not None:
            x_dense = self.transition_b(x_dense)
        return torch.cat([x_skip, x_dense], dim=1)
