"""MAC counts with fvcore, completed with handles for the ops fvcore 0.1.5 does not know (see `handles`)."""
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Set, Tuple

import torch
from torch import nn

from ._fvcore import FlopCountAnalysis, flop_count_table, silence
from ._models import InputSize, ModelOrName, eval_mode, example_input, load_model
from .handles import flop_handles

# fvcore operator names (keys of `by_operator`) that make up the "conv+linear" convention of torchvision's `_ops`
# metadata and of most papers. `addmm` is how an `nn.Linear` with bias is traced on some torch versions; a
# deformable conv counts as the conv it replaces (spec dcnv2.md: "conv+lin+deform").
CONV_LINEAR_OPERATORS = ('conv', 'linear', 'addmm', 'deform_conv2d')


@dataclass(frozen=True)
class FlopCount:
    """fvcore counts of one forward pass at batch 1, in MACs (fvcore's "flop" is one fused multiply-add;
    GFLOPs = 2 × GMACs). `total` is what timm's benchmark reports as `infer_gmacs` (× 1e9): it includes
    BatchNorm (eval: 2 per element), adaptive average pooling and up-sampling besides conv and linear layers."""
    model: str
    input_size: InputSize
    total: int
    by_operator: Dict[str, int]
    unsupported_ops: Dict[str, int]  # ops with no handle, counted 0: name -> number of calls
    uncalled_modules: Tuple[str, ...]  # modules whose forward never ran (dead code in the model)
    table: Optional[str]  # fvcore's `flop_count_table`: parameters and MACs per module (None: not asked for)

    @property
    def conv_linear(self) -> int:
        return sum(self.by_operator.get(op, 0) for op in CONV_LINEAR_OPERATORS)


def count_flops(model_or_name: ModelOrName, input_size: InputSize = (3, 224, 224),
                include_deform_sampling: bool = False, table_depth: Optional[int] = 3) -> FlopCount:
    """Count the MACs of one image of `input_size` (C, H, W) with fvcore: eval mode, batch 1, no grad, eager model.

    A name is resolved like `timm.create_model` would (close matches suggested on a typo) and built without
    weights on the CPU; a model is traced where it is and left in the train/eval mode it came in.
    `include_deform_sampling` adds the bilinear sampling and modulation cost of deformable convs (booked as
    `deform_sampling`); by default they count as the plain conv they replace. `table_depth` is the module depth of
    the per-module table; None skips the table, which costs ~25 % on top of the trace for models with thousands of
    modules (oct_resnet152: 5.7 s for the table, 22 s for the trace on a loaded 2-core machine).
    """
    model, name = load_model(model_or_name)
    with eval_mode(model), torch.no_grad(), _record_calls(model) as called:
        analysis = silence(FlopCountAnalysis(model, example_input(model, input_size)))
        analysis.set_op_handle(**flop_handles(include_deform_sampling))
        total = analysis.total()  # runs the trace
        table = None if table_depth is None else flop_count_table(analysis, max_depth=table_depth)
    return FlopCount(
        model=name,
        input_size=tuple(input_size),
        total=total,
        by_operator=dict(analysis.by_operator()),
        unsupported_ops=dict(analysis.unsupported_ops()),
        uncalled_modules=_uncalled(model, called),
        table=table,
    )


@contextmanager
def _record_calls(model: nn.Module) -> Iterator[Set[nn.Module]]:
    """The set of submodules called while in the block. fvcore's own `uncalled_modules()` lists every module that
    ran no traced op, which wrongly includes `nn.Identity` and empty `nn.Sequential` shortcuts."""
    called: Set[nn.Module] = set()
    hooks = [m.register_forward_pre_hook(lambda module, args: called.add(module)) for m in model.modules()]
    try:
        yield called
    finally:
        for hook in hooks:
            hook.remove()


def _uncalled(model: nn.Module, called: Set[nn.Module]) -> Tuple[str, ...]:
    """Names of modules that were not called, leaving out what is never meant to compute: containers that are not
    called (ModuleList/Dict) and `nn.Identity` placeholders (e.g. the drop-path of a block without a shortcut)."""
    placeholders = (nn.Module.forward, nn.Identity.forward)
    return tuple(
        name for name, module in model.named_modules()
        if module not in called and type(module).forward not in placeholders
    )
