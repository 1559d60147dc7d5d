"""Plot training curves (loss, mIoU, ...) from an mmengine run's ``vis_data/scalars.json``.

mmengine's LocalVisBackend writes one JSON object per line: training lines carry the losses,
``lr``, ``iter`` and ``step``; validation lines carry the metrics (``mIoU``, ``aAcc``, ...) and
``step`` (the training iteration the validation ran after). Each requested key becomes one
subplot of value against iteration.

    python tools/analysis_tools/analyze_logs.py work_dirs/run/<stamp>/vis_data/scalars.json \
        --keys loss mIoU --out curves.png
"""
import argparse
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

Series = Tuple[List[int], List[float]]


def load_scalars(path: Path) -> List[dict]:
    """Parse a scalars.json: one JSON object per non-empty line.

    Raises:
        ValueError: a line that is not a JSON object, naming the file and line number.
    """
    records = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path}:{number} is not JSON ({err.msg}): {line[:80]!r}') from None
        if not isinstance(record, dict):
            raise ValueError(f'{path}:{number} is a JSON {type(record).__name__}, expected an '
                             'object (one dict per line)')
        records.append(record)
    return records


def extract_series(records: Sequence[dict], keys: Sequence[str]) -> Dict[str, Series]:
    """For each key, the (iterations, values) of every record holding it, in file order.

    The x value is the record's ``iter`` (training lines) or else its ``step`` (validation
    lines). Records holding a key but neither ``iter`` nor ``step`` are skipped. A key found in
    no record is left out with a note on stderr (e.g. ``mIoU`` of a run stopped before its
    first validation).

    Raises:
        ValueError: none of the keys is in any record, naming the keys that exist.
    """
    series: Dict[str, Series] = {}
    available = sorted({k for r in records for k in r if k not in ('iter', 'step')})
    for key in keys:
        xs: List[int] = []
        ys: List[float] = []
        for record in records:
            x = record.get('iter', record.get('step'))
            if key in record and x is not None:
                xs.append(int(x))
                ys.append(float(record[key]))
        if xs:
            series[key] = (xs, ys)
        else:
            print(f'note: key {key!r} is in no record, not plotted', file=sys.stderr)
    if not series:
        raise ValueError(f'none of the keys {list(keys)} is in any record; keys in the file: '
                         f'{available}')
    return series


def plot_series(series: Dict[str, Series], out: Path, title: str = '') -> Path:
    """One subplot per key (value against iteration), saved as an image at ``out``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    cols = min(len(series), 2)
    rows = math.ceil(len(series) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4 * rows), squeeze=False)
    for ax, (key, (xs, ys)) in zip(axes.flat, series.items()):
        ax.plot(xs, ys, marker='o' if len(xs) < 30 else None, markersize=3)
        ax.set_xlabel('iteration')
        ax.set_ylabel(key)
        ax.set_title(key)
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(series):]:
        ax.axis('off')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv=None) -> Dict[str, Series]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('scalars', type=Path, help="a run's vis_data/scalars.json")
    parser.add_argument('--keys', nargs='+', default=['loss', 'mIoU'],
                        help='scalars to plot (default: loss mIoU)')
    parser.add_argument('--out', type=Path, default=Path('curves.png'), help='output image')
    parser.add_argument('--title', default='', help='figure title')
    args = parser.parse_args(argv)
    series = extract_series(load_scalars(args.scalars), args.keys)
    plot_series(series, args.out, args.title)
    summary = ', '.join(f'{k}: {len(xs)} points, last {ys[-1]:.4g} at iter {xs[-1]}'
                        for k, (xs, ys) in series.items())
    print(f'{summary}\nwrote {args.out}')
    return series


if __name__ == '__main__':
    main()
