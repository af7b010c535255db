"""Which models the parametrized tests run on.

The cheap contract checks (construction on meta, cfg, feature_info, head resets) run on every registered model.
Forward/backward at small sizes, TorchScript, FX, torch.compile and the downstream clients run on the family's
representatives: one per block type / distinct topology, the smallest that proves it. Each family lists its own.
"""
import timm_tricks

REPRESENTATIVES = {
    'pyconv_resnet': ['pyconv_resnet18', 'pyconvhg_resnet50'],
    'spconv_resnet': ['spconv_resnet18', 'spconv_resnet50'],
    'oct_resnet': ['oct_resnet26'],
    'blurpool_resnet': ['blurpool_resnet18', 'blurpool_resnet50_lpf2'],
    'dcn_resnet': ['dcnv2_resnet50'],
    'ghost_resnet': ['ghost_resnet50'],
    'csp_densenet': ['cspdensenet121', 'csppeleenet'],
    'plugin_resnet': ['cbam_resnet50', 'metaacon_resnet50'],
}

# one backbone per family through smp and torchvision detection
CLIENT_MODELS = {
    'pyconv_resnet': 'pyconv_resnet50',
    'spconv_resnet': 'spconv_resnet50',
    'oct_resnet': 'oct_resnet26',
    'blurpool_resnet': 'blurpool_resnet18',
    'dcn_resnet': 'dcnv2_resnet50',
    'ghost_resnet': 'ghost_resnet50',
    'csp_densenet': 'csppeleenet',
    'plugin_resnet': 'cbam_resnet50',
}

ALL_MODELS = timm_tricks.list_models()


def registered(names):
    """The names as given; a name that is not registered (renamed, removed) fails here instead of silently
    shrinking the tests that use it."""
    names = list(names)
    missing = [n for n in names if n not in ALL_MODELS]
    assert not missing, f'model_matrix names that are not registered: {missing}'
    return names


REPRESENTATIVE_MODELS = registered(n for names in REPRESENTATIVES.values() for n in names)
CLIENT_MATRIX = registered(CLIENT_MODELS.values())
# every family has representatives and a client model
assert set(REPRESENTATIVES) == set(CLIENT_MODELS) == {timm_tricks.model_family(n) for n in ALL_MODELS}
