"""tools/dist_train.sh across 2 nodes, played on one machine: NNODES=2, one gloo process per
node, NODE_RANK 0 and 1, the same MASTER_ADDR/PORT (torchrun's static rendezvous, hosted by
node 0). Each node has its own --work-dir, as two real machines would.

Each rank records its batches and its parameters before and after training
(HrplusTestRecordHook of tests/helpers/probe_hooks.py). The node of NODE_RANK=1 writing the files of
global rank 1, the ranks seeing different images, and identical moved parameters at the end
prove that the two launches formed one world of 2 and averaged their gradients.
"""
import json
import os
import signal
import socket
import subprocess

import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint

from tests.helpers.tiny_run import REPO, make_data, tool_env, write_config

pytestmark = pytest.mark.torch21

ITERS = 4
NODES = 2


def free_port() -> str:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def launch_node(node_rank: int, config, work_dir, port: str, log_path) -> subprocess.Popen:
    env = tool_env(NNODES=str(NODES), NODE_RANK=str(node_rank), MASTER_ADDR='127.0.0.1',
                   PORT=port, HRPLUS_TEST_RECORD='1')
    with open(log_path, 'w') as log:  # a file, not a pipe: a full pipe could stall a rank
        return subprocess.Popen(
            ['bash', str(REPO / 'tools' / 'dist_train.sh'), str(config), '1',
             '--work-dir', str(work_dir)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the launch's process group (bash, torchrun): torchrun then ends its workers,
    which run in sessions of their own; SIGKILL if that takes over a minute."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope='module')
def multinode_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('multinode')
    config = write_config(root / 'tiny.py', make_data(root / 'data', num_train=8, num_val=2),
                          max_iters=ITERS, ckpt_interval=ITERS, val_interval=ITERS)
    port = free_port()
    work_dirs = [root / f'node{k}' for k in range(NODES)]
    logs = [root / f'node{k}.log' for k in range(NODES)]
    procs = [launch_node(k, config, work_dirs[k], port, logs[k]) for k in range(NODES)]
    try:
        codes = [proc.wait(timeout=600) for proc in procs]
    finally:
        for proc in procs:  # after a timeout or an error, end what is left of both launches
            stop(proc)
    texts = [log.read_text() for log in logs]
    return dict(codes=codes, work_dirs=work_dirs, logs=texts,
                output='\n'.join(f'--- node {k}\n{text[-4000:]}' for k, text in enumerate(texts)))


def test_both_nodes_finish(multinode_run):
    assert multinode_run['codes'] == [0] * NODES, multinode_run['output']
    # only global rank 0 saves checkpoints; the validation ran over both ranks
    node0, node1 = multinode_run['work_dirs']
    assert (node0 / f'iter_{ITERS}.pth').is_file()
    assert not list(node1.glob('iter_*.pth')) and not (node1 / 'last_checkpoint').exists()
    node0_log = multinode_run['logs'][0]
    assert 'GPU number: 2' in node0_log  # mmengine's name for the world size
    assert 'mIoU' in node0_log


def test_ranks_saw_different_samples(multinode_run):
    assert multinode_run['codes'] == [0] * NODES, multinode_run['output']
    seen = {}
    for rank, work_dir in enumerate(multinode_run['work_dirs']):  # node k runs global rank k
        lines = (work_dir / f'samples_rank{rank}.jsonl').read_text().splitlines()
        seen[rank] = {rec['iter']: rec['samples'] for rec in map(json.loads, lines)}
    assert sorted(seen[0]) == sorted(seen[1]) == list(range(1, ITERS + 1))
    for it in range(1, ITERS + 1):
        assert not set(seen[0][it]) & set(seen[1][it]), (it, seen[0][it], seen[1][it])
    # 8 images, 2 ranks x batch 2: the first two iterations are a partition of the training set
    assert len({img for it in (1, 2) for rank in (0, 1) for img in seen[rank][it]}) == 8


def test_ranks_end_with_equal_parameters(multinode_run):
    assert multinode_run['codes'] == [0] * NODES, multinode_run['output']
    work_dirs = multinode_run['work_dirs']
    final, init = ([torch.load(work_dirs[r] / f'{name}_rank{r}.pth', weights_only=True)
                    for r in range(NODES)] for name in ('params', 'params_init'))
    assert final[0].keys() == final[1].keys() == init[0].keys() and len(final[0]) > 400
    assert [k for k in final[0] if not torch.equal(final[0][k], final[1][k])] == []
    assert [k for k in init[0] if not torch.equal(init[0][k], init[1][k])] == []
    # training moved them (AdamW moves every parameter that has a gradient)
    assert [k for k in final[0] if torch.equal(final[0][k], init[0][k])] == []
    ckpt = _load_checkpoint(str(work_dirs[0] / f'iter_{ITERS}.pth'), map_location='cpu')
    assert all(torch.equal(ckpt['state_dict'][k], v) for k, v in final[0].items())
