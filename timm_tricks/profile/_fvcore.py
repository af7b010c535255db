"""fvcore, imported and configured so that none of its warnings or log lines reach the user."""
import warnings

with warnings.catch_warnings():
    # `import fvcore.nn` scripts its focal losses; torch 2.14 answers with FutureWarnings about torch.jit.script.
    warnings.simplefilter('ignore', FutureWarning)
    from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis, flop_count_table
    from fvcore.nn.jit_analysis import JitModelAnalysis
    from fvcore.nn.jit_handles import generic_activation_jit, get_shape

__all__ = [
    'ActivationCountAnalysis', 'FlopCountAnalysis', 'flop_count_table', 'generic_activation_jit', 'get_shape',
    'silence',
]


def silence(analysis: JitModelAnalysis) -> JitModelAnalysis:
    """Turn off fvcore's logged warnings (we report unsupported ops and uncalled modules in our results instead)
    and every Python warning raised while tracing (TracerWarnings, TorchScript deprecations)."""
    return analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings('none')
