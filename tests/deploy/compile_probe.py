"""One process of ``test_compile_cache.py``: a tiny HRNet + FCNHead segmentor with random
weights from SEED, run eagerly and through ``optimize_for_inference(compile=True)``.

    python -m tests.deploy.compile_probe SEED OUT.pt    # from the repository root

Saves ``dict(eager=logits, compiled=logits, cache={'hit': h, 'miss': m, 'bypass': b})`` to
OUT.pt, ``cache`` being what inductor's FX graph cache did during the compiling call (in the
folder ``TORCHINDUCTOR_CACHE_DIR`` names). Run as its own process so that nothing compiled in
memory survives from an earlier run: only the on-disk cache can.
"""
import sys

import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmseg_hrplus  # noqa: F401  (registers our models)
from mmseg_hrplus.deploy import optimize_for_inference
from mmseg_hrplus.deploy.inductor import inductor_cache_counts
from tests.helpers.tiny_models import randomize_conv_bn_, tiny_hrnet_extra

WIDTHS = [4, 8, 16, 32]
INPUT_SHAPE = (1, 3, 64, 64)


def tiny_segmentor(seed: int) -> torch.nn.Module:
    init_default_scope('mmseg')
    model = MODELS.build(dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0.0] * 3, std=[1.0] * 3),
        backbone=dict(type='mmseg_hrplus.HRNet', extra=tiny_hrnet_extra(WIDTHS)),
        decode_head=dict(type='FCNHead', in_channels=WIDTHS, in_index=(0, 1, 2, 3),
                         channels=sum(WIDTHS), input_transform='resize_concat', kernel_size=1,
                         num_convs=1, concat_input=False, dropout_ratio=-1, num_classes=5,
                         align_corners=False)))
    return randomize_conv_bn_(model, seed).eval()


def main(seed: int, out: str) -> None:
    torch.set_num_threads(1)
    model = tiny_segmentor(seed)
    inputs = torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eager = model(inputs, mode='tensor')
        compiled_model = optimize_for_inference(model, compile=True)
        before = inductor_cache_counts()
        compiled = compiled_model(inputs, mode='tensor')
    cache = {k: n - before[k] for k, n in inductor_cache_counts().items()}
    torch.save(dict(eager=eager, compiled=compiled, cache=cache), out)


if __name__ == '__main__':
    main(int(sys.argv[1]), sys.argv[2])
