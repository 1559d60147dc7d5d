"""Convert a checkpoint of another project into mmseg_hrplus's keys.

Usage::

    python tools/model_converters/convert.py SOURCE SRC DST [--config CONFIG]
    python tools/model_converters/convert.py --list
    python tools/model_converters/convert.py --published

SOURCE names the file's format (``--list`` shows them all; ``mmengine`` keeps an mmengine
checkpoint's keys); SRC is a local path, an ``http(s)://`` URL, or the name of a published file
(``--published`` lists them; docs/model_zoo.md) that is not a local file, then fetched from its
project's link (hash-checked where its name carries a hash), all read without running code from
them. With ``--config``, the converted weights are loaded strictly into the config's model (its
backbone, for an ImageNet backbone file), built without loading any checkpoint: a missing or an
extra key, or another shape, is an error naming the config and the keys, and DST is not
written. DST is written as an mmengine checkpoint, or as safetensors with ``--format
safetensors`` or a ``.safetensors`` name (``state_dict`` + ``meta`` with the source, the
original file name, the class names when the file has them, and every key dropped on purpose
with the reason). Load DST with ``load_from=`` or ``init_cfg=dict(type='Pretrained',
checkpoint=DST)`` in the config that names this command.
"""
import argparse
import os.path as osp
import sys
from typing import Optional, Sequence

from mmseg_hrplus.checkpoint import CheckpointError
from mmseg_hrplus.converters.config_fit import check_fits_model
from mmseg_hrplus.converters.published import published_file, published_names
from mmseg_hrplus.converters.registry import (OUTPUT_FORMATS, ConversionError, convert_file,
                                              get_source, source_names, write_converted)


def print_published() -> None:
    for name in published_names():
        known = published_file(name)
        how = 'download by hand from' if known.by_hand else 'fetched from'
        print(f'{name}\n    {known.source} -> {known.config}\n    {how} {known.url}')


def check_against_config(state_dict, config: str) -> str:
    """Build ``config``'s model with no checkpoint loading, load ``state_dict`` strictly."""
    from mmengine.config import Config

    from mmseg_hrplus.engine.runner import build_config_model, drop_checkpoint_loading
    cfg = Config.fromfile(config)
    drop_checkpoint_loading(cfg.model)
    return check_fits_model(state_dict, build_config_model(cfg), config)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('source', nargs='?', help='format of SRC (see --list)')
    parser.add_argument('src', nargs='?', help='checkpoint of the original project (path/URL)')
    parser.add_argument('dst', nargs='?', help='output checkpoint path')
    parser.add_argument('--format', choices=OUTPUT_FORMATS, default=None,
                        help='what DST is written as: an mmengine checkpoint (pth) or '
                             'safetensors (no pickle: the format to share weights in); by '
                             'default from DST\'s suffix')
    parser.add_argument('--config', default=None,
                        help='after converting, load the weights strictly into this config\'s '
                             'model (built without loading any checkpoint)')
    parser.add_argument('--list', action='store_true', help='list the source formats')
    parser.add_argument('--published', action='store_true',
                        help='list the published files SRC may name, with their links')
    args = parser.parse_args(argv)
    if args.list:
        for name in source_names():
            print(f'{name:22s} {get_source(name).description}')
        return
    if args.published:
        print_published()
        return
    if not (args.source and args.src and args.dst):
        parser.error('SOURCE, SRC and DST are required (or --list); SOURCE is one of: '
                     + ', '.join(source_names()))
    if args.source not in source_names():
        parser.error(f'unknown SOURCE {args.source!r}; choose one of: '
                     + ', '.join(source_names()))
    if args.config is not None and not osp.isfile(args.config):
        parser.error(f'--config {args.config!r}: no such config file')
    converted = convert_file(args.source, args.src)
    if args.config is not None:  # before writing: a file that does not fit is not written
        try:
            fits = check_against_config(converted.state_dict, args.config)
        except ConversionError as err:
            raise ConversionError(f'{err}; {args.dst} was not written') from None
    write_converted(converted, args.source, args.src, args.dst, args.format)
    print(f'{args.src} ({args.source}): {len(converted.state_dict)} tensors written to '
          f'{args.dst}; {len(converted.dropped)} source keys dropped on purpose')
    for key, why in list(converted.dropped.items())[:20]:
        print(f'  dropped {key}: {why}')
    if args.config is not None:
        print(fits)


if __name__ == '__main__':
    try:
        main()
    except (CheckpointError, ConversionError) as err:  # the message is the whole story
        sys.exit(f'{type(err).__name__}: {err}')
