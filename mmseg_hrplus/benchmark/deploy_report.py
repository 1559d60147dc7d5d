"""The report of ``tools/analysis_tools/deploy_accuracy.py`` as a markdown section that a page
(docs/deploy_accuracy.md) keeps one of per key (the config), so that a re-run replaces its own
section and leaves the rest of the page alone.

A section is delimited by two HTML comments, invisible on the rendered page::

    <!-- deploy_accuracy: configs/quickstart/bisenetv2_synthetic.py -->
    ...
    <!-- end deploy_accuracy: configs/quickstart/bisenetv2_synthetic.py -->
"""
import math
from typing import Dict, List, Mapping, Optional, Sequence

from .markdown import write_section

#: The tag of this report's sections (:func:`mmseg_hrplus.benchmark.markdown.write_section`).
SECTION_TAG = 'deploy_accuracy'
PAGE_TITLE = '# Accuracy after deployment'


def write_report_section(path, key: str, body: str) -> None:
    """Put ``body`` as the section ``key`` (the config) of the page ``path``."""
    write_section(path, key, body, tag=SECTION_TAG, title=PAGE_TITLE)


def _number(value: Optional[float], fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return format(value, fmt)


def _speed(speed: Optional[dict], emulated: bool) -> List[str]:
    if emulated:
        return ['emulated, not meaningful'] * 2
    if speed is None:
        return ['-', '-']
    return [f"{speed['speedup'][0]:.2f}x / {speed['speedup'][1]:.2f}x", f"{speed['fps']:.2f}"]


def accuracy_table(rows: Sequence[Mapping], shape: Sequence[int]) -> List[str]:
    """One markdown row per path: precision run, mIoU, its difference to the reference,
    label agreement, max relative logit difference, speed-up (min / median) and frames per
    second at ``shape``; a path that did not run says why."""
    h, w = shape
    lines = [f'| path | precision run | mIoU | mIoU - f32 | label agreement | max rel. logit '
             f'diff | speed-up at {h}x{w} (min / median) | fps at {h}x{w} |',
             '|---|---|---|---|---|---|---|---|']
    for row in rows:
        if row.get('not_run'):
            lines.append(f"| {row['path']} | not run: {row['not_run']} | | | | | | |")
            continue
        lines.append(' | '.join([
            f"| {row['path']}", row['precision'], _number(row['mIoU'], '.2f'),
            _number(row['mIoU_diff'], '+.2f'), _number(row['agreement'], '.6f'),
            _number(row['max_rel_logit_diff'], '.1e'),
            *_speed(row.get('speed'), row.get('emulated', False))]) + ' |')
    return lines


def fps_table(rows: Sequence[Mapping], shapes: Sequence[Sequence[int]]) -> List[str]:
    """Frames per second (1 / median, and 1 / min) per path at each of ``shapes``, with the
    path's mIoU difference to f32 beside it."""
    header = ['path', 'precision run', 'mIoU - f32']
    header += [f'fps at {h}x{w} (median / best)' for h, w in shapes]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for row in rows:
        if row.get('not_run'):
            continue
        cells = [row['path'], row['precision'], _number(row['mIoU_diff'], '+.2f')]
        for h, w in shapes:
            speed = row['fps_speed'].get(f'{h}x{w}')
            if row.get('emulated'):
                cells.append('emulated, not meaningful')
            elif speed is None:
                cells.append('-')
            else:
                cells.append(f"{speed['fps']:.2f} / {1.0 / speed['min_s']:.2f}")
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines


def section_body(report: Dict) -> str:
    """The markdown of one run: what was measured where (model, data, CPU, load, date,
    commit, command), the accuracy table and, when asked for, the fps table."""
    lines = [
        f"## {report['config']}",
        '',
        f"Checkpoint `{report['checkpoint']}`; {report['images']} images of `{report['data']}`"
        f" ({report['split']}); int8 calibrated on {report['calibration']}.",
        f"CPU: {report['cpu']} (every path runs {report['threads']} threads); load average "
        f"{report['load_start']:.1f} at the start, {report['load_end']:.1f} at the end"
        f"{' (timed under load: other processes shared the cores)' if report['loaded'] else ''}"
        f"; {report['repeats']} interleaved timing rounds.",
        f"Date {report['date']}, commit {report['commit']}.",
        '',
        '```',
        report['command'],
        '```',
        '',
        *accuracy_table(report['rows'], report['shape']),
    ]
    if report.get('fps_shapes'):
        lines += ['', 'Frames per second (batch 1; median = 1 / median seconds, best = 1 / min '
                  'seconds), from interleaved rounds of their own at each size:', '',
                  *fps_table(report['rows'], report['fps_shapes'])]
    notes = report.get('notes') or []
    if notes:
        lines += [''] + [f'- {note}' for note in notes]
    return '\n'.join(lines)


def report_rows(names: Sequence[str], built: Mapping, not_run: Mapping[str, str],
                accuracy: Mapping[str, dict], speed: Mapping[str, dict],
                fps_speeds: Mapping[str, Mapping[str, dict]]) -> List[dict]:
    """One row per requested path, in ``names`` order: the accuracy of
    :func:`~mmseg_hrplus.benchmark.deploy_accuracy.evaluate_paths` (``mIoU_diff`` against the
    first path), the speed of :func:`~mmseg_hrplus.benchmark.deploy_speed.time_paths` at the
    main shape and at each fps shape (``'HxW'`` -> its speed), the precision run and the
    runtime's properties; or ``not_run`` with the reason."""
    rows = []
    reference = accuracy[names[0]]['mIoU']
    for name in names:
        if name in not_run:
            rows.append(dict(path=name, not_run=not_run[name]))
            continue
        path, scores = built[name], accuracy[name]
        rows.append(dict(
            path=name, precision=path.precision, emulated=path.emulated,
            properties=path.properties, mIoU=scores['mIoU'],
            mIoU_diff=round(scores['mIoU'] - reference, 2), agreement=scores['agreement'],
            max_rel_logit_diff=scores['max_rel_logit_diff'], metrics=scores['metrics'],
            speed=speed.get(name),
            fps_speed={shape: speeds.get(name) for shape, speeds in fps_speeds.items()}))
    return rows
