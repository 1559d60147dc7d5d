"""Reads each file of the attack corpus in this process and reports what happened, one JSON line
per file: the outcome and message of ``read_checkpoint`` and of mmengine's ``CheckpointLoader``,
modules imported during the read, changes to the watched folder, the marker, and how much the
peak memory rose. Run by tests/checkpoint/test_attack_corpus.py:

    python corpus_worker.py MANIFEST.json WATCHED_DIR MARKER

A line ``{"start": name}`` precedes each file, so that a crash or a hang names its file.
"""
import hashlib
import json
import os
import resource
import sys


def snapshot(folder):
    state = {}
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        info = os.lstat(path)
        with open(path, 'rb') as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        state[entry] = [info.st_mode, info.st_uid, info.st_gid, info.st_mtime_ns, digest]
    return state


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def outcome(load, path):
    from mmseg_hrplus.checkpoint import CheckpointError, UnsafeCheckpointError
    try:
        load(path)
    except UnsafeCheckpointError as err:
        return 'refused', str(err)
    except CheckpointError as err:
        return 'damaged', str(err)
    except BaseException as err:  # noqa: BLE001  reported, the test fails on it
        return 'escaped', f'{type(err).__name__}: {err}'
    return 'loads', ''


def main():
    manifest, watched, marker = sys.argv[1:4]
    import torch  # noqa: F401
    from mmengine.runner import CheckpointLoader

    from mmseg_hrplus.checkpoint import read_checkpoint
    cases = json.load(open(manifest))
    loaders = {
        'read_checkpoint': lambda p: read_checkpoint(p, map_location='cpu'),
        'CheckpointLoader': lambda p: CheckpointLoader.load_checkpoint(p, map_location='cpu'),
    }
    # warm up: whatever a legitimate read imports is imported before the first case
    for load in loaders.values():
        outcome(load, cases[0]['warmup'])
    for case in cases:
        print(json.dumps({'start': case['name']}), flush=True)
        report = {'name': case['name']}
        for label, load in loaders.items():
            modules = set(sys.modules)
            before = snapshot(watched)
            peak = peak_mb()
            kind, message = outcome(load, case['path'])
            report[label] = {
                'kind': kind, 'message': message,
                'new_modules': sorted(set(sys.modules) - modules)[:10],
                'watched_changed': snapshot(watched) != before,
                'marker': os.path.exists(marker),
                'peak_rise_mb': round(peak_mb() - peak, 1)}
        print(json.dumps(report), flush=True)


if __name__ == '__main__':
    main()
