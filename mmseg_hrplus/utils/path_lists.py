"""The files a folder or a list file names, as the tools take them (``tools/infer.py``'s
INPUT, ``--calib`` of the deployment tools, the deployment-accuracy calibration folder).

* a folder: its files with one of the given suffixes (lower-cased), subfolders included,
  sorted;
* a list file (:data:`LIST_SUFFIXES`): one path per line, relative paths counted from the
  list's folder, blank lines and lines starting with '#' skipped.

Callers check what they need (existence, emptiness) and word their own errors.
"""
from pathlib import Path
from typing import List, Sequence, Tuple, Union

#: File extensions read as images (lower case; anything OpenCV decodes).
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
#: Extensions of list files (one path per line).
LIST_SUFFIXES = ('.txt', '.lst', '.list')

PathLike = Union[str, Path]


def files_under(folder: PathLike, suffixes: Sequence[str]) -> List[Path]:
    """The files under ``folder`` (recursively) whose lower-cased suffix is in ``suffixes``,
    sorted."""
    return sorted(p for p in Path(folder).rglob('*')
                  if p.suffix.lower() in suffixes and p.is_file())


def listed_paths(list_file: PathLike) -> List[Tuple[str, Path]]:
    """``(line, path)`` for each entry of ``list_file``, in order: the stripped line as
    written, and the path it names (relative lines joined to the list's folder). Whether the
    paths exist is the caller's to check."""
    list_file = Path(list_file)
    entries = []
    for line in list_file.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith('#'):
            entries.append((line, Path(line) if Path(line).is_absolute()
                            else list_file.parent / line))
    return entries
