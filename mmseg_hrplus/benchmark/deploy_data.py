"""The data of a deployment-accuracy run: a config's test split pointed at a dataset folder,
and the calibration images for int8, which must never be evaluation images.

The config's dataloaders are pointed at ``data_root`` the way ``tools/demo.py`` points the
quickstart config at its synthetic data (``data_root`` and each dataloader's
``dataset.data_root``), so any Cityscapes-layout folder works with a Cityscapes config.
"""
from pathlib import Path
from typing import List, Optional, Sequence

from mmengine.config import Config

from mmseg_hrplus.apis.inference import IMAGE_EXTENSIONS
from mmseg_hrplus.datasets.synthetic_cityscapes import data_root_options
from mmseg_hrplus.utils.path_lists import files_under
from mmseg_hrplus.utils.validation import check_int


def check_folder(argument: str, path) -> Path:
    """``Path(path)`` if it is an existing folder, else ``ValueError`` naming ``argument``."""
    if path is None or not Path(path).is_dir():
        raise ValueError(f'{argument}={str(path)!r} is not an existing folder')
    return Path(path)


def point_at_data(cfg: Config, data_root) -> Config:
    """``cfg`` with its ``data_root`` and dataloaders' ``dataset.data_root`` set to
    ``data_root`` (in place; returned for chaining).

    Raises:
        ValueError: ``data_root`` is not an existing folder (named as ``--data``).
    """
    root = check_folder('--data', data_root)
    present = {key: value for key, value in data_root_options(root.resolve()).items()
               if key == 'data_root' or key.split('.')[0] in cfg}
    cfg.merge_from_dict(present)
    return cfg


def build_test_dataloader(cfg: Config):
    """The config's ``test_dataloader`` (as ``tools/test.py`` builds it).

    Raises:
        ValueError: it finds no images (naming ``--data`` and the folder it read).
    """
    from mmengine.runner import Runner
    loader = Runner.build_dataloader(cfg.test_dataloader)
    if len(loader.dataset) == 0:
        dataset = cfg.test_dataloader.dataset
        raise ValueError(f"--data: no images in the test split "
                         f"({dataset.get('data_root')}/{dataset.get('data_prefix')})")
    return loader


def dataset_images(dataset) -> List[str]:
    """The image files of an mmengine ``BaseDataset``, in its order."""
    return [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]


def folder_images(folder) -> List[str]:
    """The images (:data:`~mmseg_hrplus.apis.inference.IMAGE_EXTENSIONS`) under ``folder``,
    recursively, sorted."""
    return sorted(str(p) for p in files_under(folder, IMAGE_EXTENSIONS))


def calibration_images(cfg: Config, calib_dir: Optional[str], count: int,
                       evaluation: Sequence[str]) -> List[str]:
    """The first ``count`` images of ``calib_dir``, or, without it, of the config's training
    split (its ``train_dataloader`` dataset, pointed at the data like the test split).

    Raises:
        ValueError: a missing ``--calib`` folder, no image found, or an image that is also in
            ``evaluation`` (calibrating on the images that are scored would flatter int8).
    """
    check_int('--calib-count', count)
    if calib_dir is not None:
        found = folder_images(check_folder('--calib', calib_dir))
        source = f'--calib {calib_dir}'
    else:
        from mmseg.registry import DATASETS
        found = dataset_images(DATASETS.build(cfg.train_dataloader.dataset))
        source = 'the training split (no --calib given)'
    if not found:
        raise ValueError(f'int8 needs calibration images; none found in {source}: pass '
                         f'--calib DIR (images, not the evaluation ones)')
    chosen = found[:count]
    scored = {str(Path(p).resolve()) for p in evaluation}
    overlap = [p for p in chosen if str(Path(p).resolve()) in scored]
    if overlap:
        raise ValueError(f'--calib: {len(overlap)} calibration images are evaluation images '
                         f'(e.g. {overlap[0]}); calibrate on other images')
    return chosen
