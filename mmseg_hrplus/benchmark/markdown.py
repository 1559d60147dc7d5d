"""Benchmark reports as Markdown sections of a docs page, written by the tool that measured
them (``tools/benchmark.py --markdown docs/benchmarks.md``).

A page holds any number of sections, each between two HTML comments that carry its key::

    <!-- measured: KEY -->
    ... written by the tool ...
    <!-- end measured: KEY -->

(the tag, ``measured`` here, names the tool's kind of section). :func:`write_section` puts a
section in place of the one with the same key, or appends it, and leaves the rest of the page
(hand-written text included) as it is; ``tools/analysis_tools/deploy_accuracy.py`` writes its
sections the same way, keyed by the config. The key of a benchmark
section is its command line without the output options, so rerunning a command updates its
own table. Every section states the date, the CPU, the commit and the command.
"""
import datetime
import re
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Sequence

#: Command-line options that name where results go, not what is measured.
OUTPUT_OPTIONS = ('--json', '--markdown')


def section_key(argv: Sequence[str]) -> str:
    """``argv`` without :data:`OUTPUT_OPTIONS` and their values, joined by spaces."""
    kept: List[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split('=', 1)[0]
        if name in OUTPUT_OPTIONS:
            skip = '=' not in arg
            continue
        kept.append(arg)
    return ' '.join(kept)


def git_commit(repo: Path) -> str:
    """The short commit of ``repo``'s HEAD, with ``+changes`` when tracked files other than
    Markdown pages (which the tools write their results into) differ from it, or
    ``'unknown'`` outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(['git', '-C', str(repo), *args], capture_output=True,
                              text=True, check=True).stdout.strip()
    try:
        commit = git('rev-parse', '--short', 'HEAD')
        dirty = git('status', '--porcelain', '--untracked-files=no', '--', '.',
                    ':(exclude)*.md')
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'
    return commit + ('+changes' if dirty else '')


def section_markers(key: str, tag: str = 'measured') -> tuple:
    """The opening and closing comments of the section ``key`` (see the module notes)."""
    if not key or '-->' in key or '\n' in key:
        raise ValueError(f'key={key!r} must be a non-empty single line without "-->"')
    return f'<!-- {tag}: {key} -->', f'<!-- end {tag}: {key} -->'


def replace_section(text: str, key: str, body: str, tag: str = 'measured') -> str:
    """``text`` with the section ``key`` replaced by ``body`` (markers added), or with the
    section appended when ``text`` has none; the rest of ``text`` is kept as it is.

    Raises:
        ValueError: a bad ``key``, or ``text`` holds an unterminated or doubled section of
            ``key`` (fixed by hand rather than guessed at).
    """
    begin, end = section_markers(key, tag)
    section = f'{begin}\n{body.strip()}\n{end}'
    starts, ends = text.count(begin), text.count(end)
    if starts == 0 and ends == 0:
        return text.rstrip('\n') + ('\n\n' if text.strip() else '') + section + '\n'
    if starts != 1 or ends != 1 or text.index(begin) > text.index(end):
        raise ValueError(f'the page has {starts} start and {ends} end markers of the section '
                         f'{key!r}; expected one of each, in order (fix the page by hand)')
    pattern = re.escape(begin) + r'.*?' + re.escape(end)
    return re.sub(pattern, lambda _: section, text, count=1, flags=re.S)


def write_section(path, key: str, body: str, tag: str = 'measured',
                  title: Optional[str] = None) -> None:
    """Put ``body`` as the section ``key`` of the Markdown page ``path`` (created, starting
    with ``title`` when given, if it does not exist)."""
    path = Path(path)
    text = path.read_text(encoding='utf-8') if path.is_file() else (
        f'{title}\n' if title else '')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_section(text, key, body, tag), encoding='utf-8')


def _ratio(value: Optional[dict]) -> str:
    return f'{value["min"]:.2f}x / {value["median"]:.2f}x' if value else '-'


def _timing_table(section: dict, with_diff: bool) -> List[str]:
    head = '| variant | min (s) | median (s) | speed-up vs reference, min / median |'
    rule = '|---|---|---|---|'
    if with_diff:
        head += ' max logit difference, relative to the largest reference logit |'
        rule += '---|'
    rows = [head, rule]
    anchor = section.get('logit_abs_max')
    for name in section['min_s']:
        row = (f'| {name} | {section["min_s"][name]:.4f} | {section["median_s"][name]:.4f} | '
               f'{_ratio(section.get("speedup", {}).get(name))} |')
        if with_diff:
            diff = section.get('max_abs_diff', {}).get(name)
            row += f' {diff / anchor:.1e} |' if diff is not None and anchor else ' - |'
        rows.append(row)
    return rows


def render_benchmark(report: Dict, when: Optional[datetime.datetime] = None,
                     commit: str = 'unknown') -> str:
    """The Markdown of one ``tools/benchmark.py`` report (its JSON dict)."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    title = Path(report['config']).stem
    if report.get('reference'):
        title += f' against {report["reference"]}'
    lines = [
        f'### {title}', '',
        f'- CPU: {report["cpu"]["summary"]}; torch {report["torch"]}',
        f'- measured {when:%Y-%m-%d %H:%M} UTC at commit {commit}',
        f'- command: `{report["command"]}`', '']
    inference = report.get('inference')
    if inference:
        shape = 'x'.join(map(str, inference['shape']))
        rounds = len(next(iter(inference['times_s'].values())))
        lines += [f'Inference, input {shape}, {rounds} interleaved rounds:', '']
        lines += _timing_table(inference, with_diff=True)
        notes = []
        if 'ours_optimized_compiled' in inference.get('first_call_s', {}):
            notes.append(f'first call of the compiled model (the compile): '
                         f'{inference["first_call_s"]["ours_optimized_compiled"]:.1f} s')
        if 'onnxruntime' in inference:
            notes.append(f'onnxruntime {inference["onnxruntime"]["version"]}, run on the export '
                         f'of {inference["onnxruntime"]["exported"]}')
        for row in inference['min_s']:
            ov = inference.get(row)
            if row.startswith('openvino') and isinstance(ov, dict) and 'exported' in ov:
                int8 = (f', {ov["int8_convolutions"]} convolutions in int8'
                        if ov.get('requested') == 'int8' else '')
                notes.append(f'{row}: OpenVINO {ov.get("openvino")}, precision hint '
                             f'{ov.get("precision")}{int8}, {ov.get("threads")} threads, hint '
                             f'{ov.get("hint")}, run on the export of {ov["exported"]}')
        lines += [''] + [f'- {note}' for note in notes]
        lines.append('')
    train = report.get('train')
    if train:
        shape = 'x'.join(map(str, train['shape']))
        rounds = len(next(iter(train['times_s'].values())))
        lines += [f'Training step (forward, loss, backward, SGD), batch {shape}, {rounds} '
                  'interleaved rounds:', '']
        lines += _timing_table(train, with_diff=False)
        lines.append('')
    memory = report.get('with_cp_memory')
    if memory:
        lines += ['Training-step peak memory (MiB), without and with `with_cp`:', '',
                  '| model | without | with_cp | ratio |', '|---|---|---|---|']
        for name, entry in memory.items():
            lines.append(f'| {name} | {entry["without"]["step_peak_mb"]:.0f} | '
                         f'{entry["with_cp"]["step_peak_mb"]:.0f} | {entry["ratio"]:.2f} |')
        lines.append('')
    return '\n'.join(lines)
