"""A mutation fuzzer for the checkpoint reader: every input must load or raise CheckpointError.

Seeds are real files of the running stack (an mmengine-style training checkpoint in the zip
format with protocols 2, 4 and 5, the legacy format, safetensors) plus the committed seeds
written by the other stack (tests/data/checkpoints). Each execution takes a seed and applies
one to three mutations, some blind (bit flips, interesting bytes, insertions, deletions,
truncation, duplicated chunks) and some aware of the format (a pickle opcode replaced inside
data.pkl with the archive rebuilt around it, a field of a zip header changed). Anything else
than a clean load or a ``CheckpointError`` (another exception, a hang past the alarm) is a
finding: its input is written to ``--out`` and the run exits 1. A crash kills the process, so
the input being read is written to ``--out`` first (``current.bin``).

    python -m tests.checkpoint.fuzz_reader --seconds 40     # CI's budget (from the repo root)
    make fuzz                                               # the long mode (30 min)
"""
import argparse
import collections
import io
import json
import os
import pickle
import random
import resource
import signal
import sys
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMITTED_SEEDS = HERE.parent / 'data' / 'checkpoints'
HANG_SECONDS = 10
MEMORY_RISE_MB = 256  # what one small input may raise the peak memory by
_OPCODES = [code for code in (getattr(pickle, name) for name in dir(pickle) if name.isupper())
            if isinstance(code, bytes) and len(code) == 1]
_INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x40, 0x10]


def training_checkpoint():
    """An mmengine-style checkpoint: weights, BN buffers, SGD momentum, message hub, meta."""
    import numpy as np
    import torch
    from mmengine.logging import HistoryBuffer
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(2, 3, 6, 6)).sum().backward()
    optimizer.step()
    buffer = HistoryBuffer()
    for value in (1.0, 2.0):
        buffer.update(value)
    return {'meta': {'iter': 2, 'seed': np.int64(5), 'score': np.float64(0.5),
                     'hist': np.arange(4, dtype=np.float32), 'classes': ('a', 'b')},
            'state_dict': net.state_dict(), 'optimizer': optimizer.state_dict(),
            'message_hub': {'log_scalars': {'loss': buffer}},
            'half': torch.zeros(3, dtype=torch.float16), 'view': torch.arange(8.)[2:5]}


def make_seeds():
    import torch

    from mmseg_hrplus.checkpoint import save_safetensors
    obj = training_checkpoint()
    seeds = {}
    for protocol in (2, 4, 5):
        buffer = io.BytesIO()
        torch.save(obj, buffer, pickle_protocol=protocol)
        seeds[f'zip_p{protocol}'] = buffer.getvalue()
    buffer = io.BytesIO()
    torch.save(obj, buffer, _use_new_zipfile_serialization=False)
    seeds['legacy'] = buffer.getvalue()
    path = Path(os.environ.get('TMPDIR', '/tmp')) / f'fuzz_seed_{os.getpid()}.safetensors'
    save_safetensors(str(path), obj['state_dict'], {'iter': 2})
    seeds['safetensors'] = path.read_bytes()
    path.unlink()
    for file in sorted(COMMITTED_SEEDS.glob('*.pth')) + sorted(
            COMMITTED_SEEDS.glob('*.safetensors')):
        seeds[f'committed_{file.name}'] = file.read_bytes()
    return seeds


def _data_pkl(data: bytes):
    """The archive's records as (name, bytes), if ``data`` is a zip that zipfile can read."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return [(info.filename, archive.read(info.filename)) for info in archive.infolist()]
    except Exception:  # noqa: BLE001  not a readable zip: the blind mutations apply
        return None


def mutate_pickle_in_archive(data: bytes, rng: random.Random) -> bytes:
    from tests.helpers.pickle_asm import zip_bytes, zip_record
    records = _data_pkl(data)
    if not records:
        return mutate_bytes(data, rng)
    index = next((i for i, (name, _) in enumerate(records) if name.endswith('data.pkl')), None)
    if index is None:
        return mutate_bytes(data, rng)
    name, pkl = records[index]
    pkl = bytearray(pkl)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(pkl))
        choice = rng.random()
        if choice < 0.5:
            pkl[at:at + 1] = rng.choice(_OPCODES)
        elif choice < 0.8:
            pkl[at] = rng.choice(_INTERESTING)
        else:
            pkl[at:at] = rng.choice(_OPCODES) + bytes(rng.randrange(256) for _ in range(
                rng.randint(0, 8)))
    records[index] = (name, bytes(pkl))
    return zip_bytes([zip_record(n, d) for n, d in records])


def mutate_zip_header(data: bytes, rng: random.Random) -> bytes:
    headers = [i for sig, span in ((b'PK\x01\x02', 46), (b'PK\x03\x04', 30), (b'PK\x05\x06', 22),
                                   (b'PK\x06\x06', 56), (b'PK\x06\x07', 20))
               for i in _find_all(data, sig) for _ in [span]]
    if not headers:
        return mutate_bytes(data, rng)
    at = rng.choice(headers) + rng.randrange(4, 30)
    out = bytearray(data)
    if at < len(out):
        out[at] = rng.choice(_INTERESTING + [rng.randrange(256)])
    return bytes(out)


def _find_all(data: bytes, needle: bytes):
    start = data.find(needle)
    while start != -1:
        yield start
        start = data.find(needle, start + 1)


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    choice = rng.random()
    if not out:
        return bytes([rng.randrange(256)])
    if choice < 0.3:
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(out))
            out[at] ^= 1 << rng.randrange(8)
    elif choice < 0.5:
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] = rng.choice(_INTERESTING)
    elif choice < 0.65:
        at = rng.randrange(len(out) + 1)
        out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif choice < 0.8:
        at = rng.randrange(len(out))
        del out[at:at + rng.randint(1, 64)]
    elif choice < 0.9:
        del out[rng.randrange(len(out)):]
    else:
        at, size = rng.randrange(len(out)), rng.randint(1, 256)
        chunk = out[at:at + size]
        where = rng.randrange(len(out) + 1)
        out[where:where] = chunk
    return bytes(out)


MUTATORS = [(mutate_bytes, 0.5), (mutate_pickle_in_archive, 0.3), (mutate_zip_header, 0.2)]


def mutate(data: bytes, rng: random.Random) -> bytes:
    for _ in range(rng.randint(1, 3)):
        mutator = rng.choices([m for m, _ in MUTATORS], [w for _, w in MUTATORS])[0]
        data = mutator(data, rng)
    return data


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f'no answer within {HANG_SECONDS} s')


def run(seconds: float, seed: int, out: Path) -> dict:
    from mmseg_hrplus.checkpoint import CheckpointError, read_checkpoint
    out.mkdir(parents=True, exist_ok=True)
    seeds = make_seeds()
    for name, data in seeds.items():  # every seed must load as it is
        read_checkpoint(io.BytesIO(data), map_location='cpu', name=name)
    rng = random.Random(seed)
    names = sorted(seeds)
    outcomes = collections.Counter()
    findings = []
    signal.signal(signal.SIGALRM, _alarm)
    start = time.monotonic()
    executions = 0
    current = out / 'current.bin'
    while time.monotonic() - start < seconds:
        seed_name = rng.choice(names)
        data = mutate(seeds[seed_name], rng)
        if executions % 64 == 0 or findings:
            current.write_bytes(data)  # what a crash was reading (cheap enough every 64)
        peak = _peak_mb()
        signal.alarm(HANG_SECONDS)
        try:
            read_checkpoint(io.BytesIO(data), map_location='cpu', name='fuzzed')
            outcomes['loads'] += 1
        except CheckpointError as err:
            outcomes[type(err).__name__] += 1
            if '\n' in str(err):
                findings.append((seed_name, 'multi-line message', str(err)[:300], data))
        except BaseException as err:  # noqa: BLE001  a finding
            findings.append((seed_name, type(err).__name__, str(err)[:300], data))
        finally:
            signal.alarm(0)
        if _peak_mb() - peak > MEMORY_RISE_MB:
            findings.append((seed_name, 'memory', f'peak memory rose by {_peak_mb() - peak:.0f} '
                             'MB', data))
        executions += 1
        if len(findings) >= 20:
            break
    elapsed = time.monotonic() - start
    for index, (seed_name, kind, message, data) in enumerate(findings):
        (out / f'finding_{index}.bin').write_bytes(data)
    if current.exists() and not findings:
        current.unlink()
    return {'executions': executions, 'seconds': round(elapsed, 1),
            'per_second': round(executions / max(elapsed, 1e-9), 1),
            'outcomes': dict(outcomes), 'seeds': names,
            'peak_rss_mb': round(_peak_mb()),
            'findings': [dict(seed=s, kind=k, message=m, file=f'finding_{i}.bin')
                         for i, (s, k, m, _) in enumerate(findings)]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=40)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', type=Path, default=Path('work_dirs/fuzz_reader'))
    args = parser.parse_args(argv)
    report = run(args.seconds, args.seed, args.out)
    print(json.dumps(report, indent=1))
    return 1 if report['findings'] else 0


if __name__ == '__main__':
    sys.exit(main())
