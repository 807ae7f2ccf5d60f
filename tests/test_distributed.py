"""Data-parallel training: two torchrun processes (gloo, CPU) match one process over the same global batches.

This file is also the torchrun worker: `python -m torch.distributed.run --nproc_per_node 2 test_distributed.py OUT`
trains the tiny model below on every rank and writes what each rank saw to OUT/result_rank<r>.json.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vasa_lite.errors import InputError

STEPS, GLOBAL_BATCH, SEED = 5, 8, 3


def train_tiny(out_dir) -> dict:
    """Train a tiny regression through Trainer; returns (and writes) this rank's final weights and global RNG seed.

    Each rank builds its model from another seed, so the ranks agree only if Trainer starts them all from rank 0's
    weights. Checkpoints go to a per-rank path, so the test sees which ranks wrote files."""
    import torch.nn.functional as F

    from vasa_lite.training import Trainer, init_distributed, shard

    rank, world = init_distributed()
    out_dir = Path(out_dir)
    data = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, generator=data)
    y = torch.stack([x[:, 0] * x[:, 1], x[:, 2] - x[:, 3]], 1) + 0.1 * torch.randn(32, 2, generator=data)
    with torch.random.fork_rng():
        torch.manual_seed(100 + rank)
        model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    seen = {}

    def step_fn(step, gen):
        idx = torch.randint(len(x), (GLOBAL_BATCH,), generator=gen)      # the same global batch on every rank
        mine = shard(idx)
        if step == 0:
            seen["global_rng_seed"] = torch.initial_seed()
            seen["shard"] = len(mine)
        return {"loss": F.mse_loss(model(x[mine]), y[mine])}

    trainer = Trainer(model, opt, component="audio", preset="smoke", path=out_dir / f"tiny_rank{rank}.pt",
                      log_every=1, ckpt_every=2, grad_clip=0.5, progress=False, seed=SEED)
    summary = trainer.fit(step_fn, STEPS, resume=False)
    result = {"rank": rank, "world": world, **seen, "steps": summary["steps"],
              "weights": torch.cat([q.detach().reshape(-1) for q in model.parameters()]).tolist()}
    (out_dir / f"result_rank{rank}.json").write_text(json.dumps(result))
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args, nproc: int = 2, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def test_two_ranks_match_one_process(tmp_path):
    from vasa_lite.training import read_log

    one = train_tiny(tmp_path / "one")                       # this process: world size 1, no process group
    run = _torchrun([__file__, str(tmp_path / "ddp")])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ranks = [json.loads((tmp_path / "ddp" / f"result_rank{r}.json").read_text()) for r in (0, 1)]

    assert [r["world"] for r in ranks] == [2, 2] and [r["shard"] for r in ranks] == [4, 4]
    assert one["world"] == 1 and one["shard"] == GLOBAL_BATCH
    # ranks got their own global RNG seed (dropout, noise), seed + rank
    assert [r["global_rng_seed"] for r in ranks] == [SEED, SEED + 1]
    # the ranks stayed in step, and match one process that trained on the whole global batch
    w1, w0, ref = (torch.tensor(r["weights"]) for r in (ranks[1], ranks[0], one))
    assert torch.equal(w0, w1)
    assert (w0 - ref).abs().max() < 1e-5

    # only rank 0 wrote: one checkpoint, one log with each step once, its losses the global batch's
    files = sorted(p.name for p in (tmp_path / "ddp").iterdir())
    assert files == ["result_rank0.json", "result_rank1.json", "tiny_rank0.jsonl", "tiny_rank0.pt"]
    log, ref_log = read_log(tmp_path / "ddp" / "tiny_rank0.jsonl"), read_log(tmp_path / "one" / "tiny_rank0.jsonl")
    assert [row["step"] for row in log] == list(range(1, STEPS + 1))
    assert max(abs(a["loss"] - b["loss"]) for a, b in zip(log, ref_log)) < 1e-5


def test_shard_takes_this_ranks_equal_slice(monkeypatch):
    import vasa_lite.training as training

    batch = list(range(8))
    assert training.shard(batch) is batch                   # one process: everything, untouched
    monkeypatch.setattr(training, "dist_info", lambda: (1, 2))
    assert training.shard(batch) == [4, 5, 6, 7]
    assert torch.equal(training.shard(torch.arange(8) * 2), torch.tensor([8, 10, 12, 14]))
    assert training.shard({"a": torch.arange(4), "b": None})["a"].tolist() == [2, 3]
    with pytest.raises(InputError, match="divisible by 2"):
        training.shard(list(range(7)))


def test_component_trains_under_torchrun(tmp_path):
    """The real command, `vasa-lite train audio`, on two ranks: exits cleanly, rank 0 writes one checkpoint."""
    out = tmp_path / "audio.pt"
    run = _torchrun(["-m", "vasa_lite", "train", "audio", "--preset", "smoke", "--steps", "4", "--out", str(out),
                     "--no-resume", "--quiet"], timeout=180)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio.jsonl", "audio.pt"]
    from vasa_lite.training import read_log

    assert [row["step"] for row in read_log(out)] == [4]


if __name__ == "__main__":                                   # a torchrun worker (see the module docstring)
    torch.set_num_threads(1)
    train_tiny(sys.argv[1])
