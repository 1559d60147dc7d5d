"""The checkpoint files other projects publish that our configs run: name -> where to get it.

This table is the one list of published files (docs/model_zoo.md and the metafiles' ``Weights``
links are checked against it by the tests). ``convert.py SOURCE NAME DST`` with a NAME of this
table that is not a local file fetches the file from :attr:`PublishedFile.url` through the
verified download of :mod:`mmseg_hrplus.checkpoint.download` (cached per URL, read by the safe
reader, SHA-256 prefix checked where the name carries one). Files a project publishes only on a
page (OneDrive) cannot be fetched: asking for one names the page to download it from by hand.
"""
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional

from .errors import ConversionError


@dataclass(frozen=True)
class PublishedFile:
    """One published checkpoint.

    Attributes:
        name: the file name as published (as it is saved when downloaded).
        source: the ``convert.py`` SOURCE format that reads it.
        config: our config whose model it fits (for an ImageNet backbone: whose backbone).
        url: a direct download link, or (``by_hand``) the page the project links the file from.
        by_hand: the project publishes only a page (OneDrive): the file cannot be fetched.
        sha256_prefix: the SHA-256 prefix the file must have (the one its name carries, where
            it carries one); None: no hash check.
    """
    name: str
    source: str
    config: str
    url: str
    by_hand: bool = False
    sha256_prefix: Optional[str] = None


_HRNET_SEG = 'https://github.com/hsfzxjy/models.storage/releases/download/HRNet-OCR/'
_KAZUTO = 'https://github.com/kazuto1011/deeplab-pytorch/releases/download/v1.0/'
_MMSEG = 'https://download.openmmlab.com/mmsegmentation/v0.5/'
_MMDET_V1 = 'https://open-mmlab.s3.ap-northeast-2.amazonaws.com/mmdetection/models/hrnet/'
_W48 = 'configs/hrnet/hrnet_w48_cityscapes_official-weights.py'


def _mmseg(folder: str, stamp_and_hash: str, config: str) -> PublishedFile:
    """A file of mmseg's zoo: ``<family>/<folder>/<folder>_<stamp>-<hash>.pth``."""
    name = f'{folder}_{stamp_and_hash}.pth'
    family, source = ('hrnet', 'mmengine') if folder.startswith('fcn_hr') else (
        'bisenetv2', 'mmseg-bisenetv2')
    return PublishedFile(name, source, config, f'{_MMSEG}{family}/{folder}/{name}',
                         sha256_prefix=stamp_and_hash.rsplit('-', 1)[1])


def _imagenet(name: str, config: str, page: str) -> PublishedFile:
    return PublishedFile(name, 'hrnet-imagenet', config, f'https://1drv.ms/u/s!{page}',
                         by_hand=True)


_FILES = [
    # HRNet/HRNet-Semantic-Segmentation, README of the pytorch-v1.1 branch (OneDrive pages)
    PublishedFile('hrnet_w48_cityscapes_cls19_1024x2048_trainset.pth', 'hrnet-seg', _W48,
                  'https://1drv.ms/u/s!Aus8VCZ_C_33gSlK7Fju_sXCxFUt?e=WZ96Ck', by_hand=True),
    PublishedFile('hrnet_w18_small_v1_cityscapes_cls19_1024x2048_trainset.pth', 'hrnet-seg',
                  'configs/hrnet/hrnet_w18_small_v1_cityscapes_official-weights.py',
                  'https://1drv.ms/u/s!Aus8VCZ_C_33gSEsg-2sxTmZL2AT?e=AqHbjh', by_hand=True),
    PublishedFile('hrnet_w18_small_v2_cityscapes_cls19_1024x2048_trainset.pth', 'hrnet-seg',
                  'configs/hrnet/hrnet_w18_small_v2_cityscapes_official-weights.py',
                  'https://1drv.ms/u/s!Aus8VCZ_C_33gSAL4OurOW0RX4JH?e=ptLwpW', by_hand=True),
    # the HRNet-OCR branch's re-release of the W48 model (GitHub release asset)
    PublishedFile('hrnet_cs_8090_torch11.pth', 'hrnet-seg', _W48,
                  f'{_HRNET_SEG}hrnet_cs_8090_torch11.pth'),
    # HRNet/HRNet-Image-Classification (OneDrive pages)
    _imagenet('hrnet_w18_small_model_v1.pth',
              'configs/hrnet/hrnet_w18_small_v1_cityscapes_official-weights.py',
              'Aus8VCZ_C_33gRv2PI1vjJyn2g7G?e=i8Rdzx'),
    _imagenet('hrnet_w18_small_model_v2.pth', 'configs/hrnet/hrnet_w18_small_cityscapes.py',
              'Aus8VCZ_C_33gRmfdPR79WBS61Qn?e=HVZUi8'),
    _imagenet('hrnetv2_w18_imagenet_pretrained.pth', 'configs/hrnet/hrnet_w18_cityscapes.py',
              'Aus8VCZ_C_33cMkPimlmClRvmpw'),
    _imagenet('hrnetv2_w32_imagenet_pretrained.pth', 'configs/hrnet/hrnet_w32_cityscapes.py',
              'Aus8VCZ_C_33dYBMemi9xOUFR0w'),
    _imagenet('hrnetv2_w40_imagenet_pretrained.pth',
              'configs/mmdet/faster-rcnn_hrnetv2p-w40_1x_coco.py',
              'Aus8VCZ_C_33ck0gvo5jfoWBOPo'),
    _imagenet('hrnetv2_w48_imagenet_pretrained.pth', 'configs/hrnet_w48_cityscapes.py',
              'Aus8VCZ_C_33dKvqI6pBZlifgJk'),
    # CoinCheung/BiSeNet (GitHub release asset)
    PublishedFile('model_final_v2_city.pth', 'bisenet-coincheung',
                  'configs/bisenetv2/bisenetv2_cityscapes_coincheung-weights.py',
                  'https://github.com/CoinCheung/BiSeNet/releases/download/0.0.0/'
                  'model_final_v2_city.pth'),
    # kazuto1011/deeplab-pytorch (GitHub release assets); '-100000.' is the iteration count,
    # not a hash, although it reads as one
    PublishedFile('deeplabv2_resnet101_msc-vocaug-20000.pth', 'deeplab-kazuto',
                  'configs/deeplabv2/deeplabv2_r101_voc12aug_kazuto-weights.py',
                  f'{_KAZUTO}deeplabv2_resnet101_msc-vocaug-20000.pth'),
    PublishedFile('deeplabv2_resnet101_msc-cocostuff164k-100000.pth', 'deeplab-kazuto',
                  'configs/deeplabv2/deeplabv2_r101_cocostuff164k_kazuto-weights.py',
                  f'{_KAZUTO}deeplabv2_resnet101_msc-cocostuff164k-100000.pth'),
    # HRNet/HRNet-Object-Detection (its README links mmdetection v1's file)
    PublishedFile('faster_rcnn_hrnetv2p_w48_1x_20190820-5c6d0903.pth', 'hrnet-od',
                  'configs/mmdet/faster-rcnn_hrnetv2p-w48_1x_coco_hrnet-od-weights.py',
                  f'{_MMDET_V1}faster_rcnn_hrnetv2p_w48_1x_20190820-5c6d0903.pth',
                  sha256_prefix='5c6d0903'),
    # mmseg's zoo (its metafiles): FCN on HRNetV2, Cityscapes, 40k / 80k / 160k iterations
    _mmseg('fcn_hr18s_512x1024_40k_cityscapes', '20200601_014216-93db27d0',
           'configs/hrnet/hrnet_w18_small_cityscapes.py'),
    _mmseg('fcn_hr18s_512x1024_80k_cityscapes', '20200601_202700-1462b75d',
           'configs/hrnet/hrnet_w18_small_cityscapes.py'),
    _mmseg('fcn_hr18s_512x1024_160k_cityscapes', '20200602_190901-4a0797ea',
           'configs/hrnet/hrnet_w18_small_cityscapes.py'),
    _mmseg('fcn_hr18_512x1024_40k_cityscapes', '20200601_014216-f196fb4e',
           'configs/hrnet/hrnet_w18_cityscapes.py'),
    _mmseg('fcn_hr18_512x1024_80k_cityscapes', '20200601_223255-4e7b345e',
           'configs/hrnet/hrnet_w18_cityscapes.py'),
    _mmseg('fcn_hr18_512x1024_160k_cityscapes', '20200602_190822-221e4a4f',
           'configs/hrnet/hrnet_w18_cityscapes.py'),
    _mmseg('fcn_hr48_512x1024_40k_cityscapes', '20200601_014240-a989b146',
           'configs/hrnet_w48_cityscapes.py'),
    _mmseg('fcn_hr48_512x1024_80k_cityscapes', '20200601_202606-58ea95d6',
           'configs/hrnet_w48_cityscapes.py'),
    _mmseg('fcn_hr48_512x1024_160k_cityscapes', '20200602_190946-59b7973e',
           'configs/hrnet_w48_cityscapes.py'),
    # mmseg's zoo: BiSeNetV2 + FCN, Cityscapes, 160k iterations
    _mmseg('bisenetv2_fcn_4x4_1024x1024_160k_cityscapes', '20210902_015551-bcf10f09',
           'configs/bisenetv2/bisenetv2_cityscapes-1024x1024.py'),
    _mmseg('bisenetv2_fcn_ohem_4x4_1024x1024_160k_cityscapes', '20210902_112947-5f8103b4',
           'configs/bisenetv2/bisenetv2_cityscapes-1024x1024.py'),
    _mmseg('bisenetv2_fcn_4x8_1024x1024_160k_cityscapes', '20210903_000032-e1a2eed6',
           'configs/bisenetv2/bisenetv2_cityscapes-1024x1024.py'),
    _mmseg('bisenetv2_fcn_fp16_4x4_1024x1024_160k_cityscapes', '20210902_045942-b979777b',
           'configs/bisenetv2/bisenetv2_cityscapes-1024x1024.py'),
]

#: file name -> :class:`PublishedFile`.
PUBLISHED_FILES: Dict[str, PublishedFile] = {f.name: f for f in _FILES}


def published_file(src: str) -> Optional[PublishedFile]:
    """The published file ``src`` names (by its file name), or None."""
    return PUBLISHED_FILES.get(osp.basename(src))


def published_names() -> List[str]:
    return sorted(PUBLISHED_FILES)


def fetch_published(known: PublishedFile, progress: bool = True):
    """Download (or reuse from the cache) a published file and read it safely.

    Raises:
        ConversionError: the file is published only on a page (``by_hand``); names the page.
        mmseg_hrplus.checkpoint.CheckpointDownloadError: no route, HTTP error, a wrong hash.
    """
    if known.by_hand:
        raise ConversionError(
            f'{known.name} is not a local file, and its project publishes it only on a page '
            f'that cannot be fetched by a program: download it by hand from {known.url}, then '
            f'pass its path as SRC')
    from ..checkpoint import load_checkpoint_from_url
    return load_checkpoint_from_url(known.url, map_location='cpu', progress=progress,
                                    hash_prefix=known.sha256_prefix)
