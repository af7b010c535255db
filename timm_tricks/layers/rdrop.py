"""R-Drop (Liang et al., "R-Drop: Regularized Dropout for Neural Networks", NeurIPS 2021), as a loss helper.

Run the same batch through the model twice in training mode (dropout / drop-path draw different masks) and combine
loss = (CE(logits1, y) + CE(logits2, y)) / 2 + alpha * (KL(p1 || p2) + KL(p2 || p1)) / 2,
with p = softmax(logits). The KL terms are summed over classes and averaged over the batch (the authors' README
sums over the batch too, which scales alpha with the batch size). alpha: 0.3 in the authors' ViT code, 0.6 in the
handbook this trick comes from.

    logits1, logits2 = model(x), model(x)
    loss = RDropLoss(alpha=0.6)(logits1, logits2, target)
"""
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ['RDropLoss', 'symmetric_kl']


def symmetric_kl(logits1: torch.Tensor, logits2: torch.Tensor) -> torch.Tensor:
    """(KL(p1 || p2) + KL(p2 || p1)) / 2 over the last dim, averaged over the other dims."""
    log_p1, log_p2 = F.log_softmax(logits1, dim=-1), F.log_softmax(logits2, dim=-1)
    kl = (log_p1.exp() - log_p2.exp()) * (log_p1 - log_p2)  # p1 log(p1/p2) + p2 log(p2/p1), element-wise
    return kl.sum(-1).mean() / 2


class RDropLoss(nn.Module):
    """Mean of the task loss on both forwards + alpha * symmetric KL between them.

    Args:
        alpha: weight of the consistency term.
        criterion: task loss of (logits, target); default cross-entropy (a label-smoothing or mixup loss fits too).
    """

    def __init__(self, alpha: float = 0.3, criterion: Optional[Callable] = None):
        super().__init__()
        if alpha < 0:
            raise ValueError(f'RDropLoss alpha must be >= 0, got {alpha}')
        self.alpha = alpha
        self.criterion = criterion if criterion is not None else nn.CrossEntropyLoss()

    def forward(self, logits1: torch.Tensor, logits2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        task = (self.criterion(logits1, target) + self.criterion(logits2, target)) / 2
        return task + self.alpha * symmetric_kl(logits1, logits2)
