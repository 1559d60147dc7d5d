"""Convert a checkpoint of another project into mmseg_hrplus's keys.

Usage::

    python tools/model_converters/convert.py SOURCE SRC DST
    python tools/model_converters/convert.py --list

SOURCE names the file's format (``--list`` shows them all; ``mmengine`` keeps an mmengine
checkpoint's keys); SRC is a local path or an ``http(s)://`` URL, read without running code from
it; DST is written as an mmengine checkpoint, or as safetensors with ``--format safetensors`` or
a ``.safetensors`` name (``state_dict`` + ``meta`` with the source, the original file name, the
class names when the file has them, and every key dropped on purpose with the reason). Load DST
with ``load_from=`` or ``init_cfg=dict(type='Pretrained', checkpoint=DST)`` in the config that
names this command.
"""
import argparse
import sys
from typing import Optional, Sequence

from mmseg_hrplus.checkpoint import CheckpointError

from mmseg_hrplus.converters.registry import (OUTPUT_FORMATS, ConversionError, convert_file,
                                              get_source, source_names)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('source', nargs='?', help='format of SRC (see --list)')
    parser.add_argument('src', nargs='?', help='checkpoint of the original project (path/URL)')
    parser.add_argument('dst', nargs='?', help='output checkpoint path')
    parser.add_argument('--format', choices=OUTPUT_FORMATS, default=None,
                        help='what DST is written as: an mmengine checkpoint (pth) or '
                             'safetensors (no pickle: the format to share weights in); by '
                             'default from DST\'s suffix')
    parser.add_argument('--list', action='store_true', help='list the source formats')
    args = parser.parse_args(argv)
    if args.list:
        for name in source_names():
            print(f'{name:22s} {get_source(name).description}')
        return
    if not (args.source and args.src and args.dst):
        parser.error('SOURCE, SRC and DST are required (or --list); SOURCE is one of: '
                     + ', '.join(source_names()))
    if args.source not in source_names():
        parser.error(f'unknown SOURCE {args.source!r}; choose one of: '
                     + ', '.join(source_names()))
    converted = convert_file(args.source, args.src, args.dst, output_format=args.format)
    print(f'{args.src} ({args.source}): {len(converted.state_dict)} tensors written to '
          f'{args.dst}; {len(converted.dropped)} source keys dropped on purpose')
    for key, why in list(converted.dropped.items())[:20]:
        print(f'  dropped {key}: {why}')


if __name__ == '__main__':
    try:
        main()
    except (CheckpointError, ConversionError) as err:  # the message is the whole story
        sys.exit(f'{type(err).__name__}: {err}')
