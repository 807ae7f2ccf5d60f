"""A small training loop every chapter shares: progress bar, a JSON-lines loss log, periodic resumable
checkpoints and a final checkpoint with metrics, all through `save_checkpoint`.

    trainer = Trainer(model, torch.optim.AdamW(model.parameters(), 1e-3), component="audio", preset="cpu",
                      path=checkpoint_path("audio", "cpu"), extra={"config": cfg_dict})
    summary = trainer.fit(step_fn, steps=3000)      # step_fn(step, generator) -> {"loss": tensor, ...}

The loop owns the optimiser step (backward, gradient clipping, scheduler); `step_fn` only samples a batch with
the given generator and returns the loss. Because the batch sampler draws from that generator, and its state is
saved with the weights, a resumed run continues exactly where the interrupted one stopped.

Under `torchrun --nproc_per_node N` the same loop is data-parallel (DistributedDataParallel's scheme): every rank
draws the same global batch from the shared generator and trains on its `shard`; gradients are averaged across
ranks before each optimiser step, and only rank 0 writes checkpoints, logs and progress bars.

Also here: `load_split`, the raw clips of a world split (from the cache, or made on the fly when the cache is
absent: clips are deterministic and take ~20 ms each), and `linear_probe`, the standard test of what frozen
features carry.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from vasa_lite.checkpoints import load_checkpoint, save_checkpoint
from vasa_lite.errors import CheckpointError, InputError


def resume_path(path) -> Path:
    """Where the training state (optimiser, generator, step) of an unfinished run lives, beside the weights."""
    path = Path(path)
    return path.with_name(path.stem + ".resume.pt")


def log_path_for(path) -> Path:
    path = Path(path)
    return path.with_name(path.stem + ".jsonl")


def read_log(path) -> list[dict]:
    """The JSON-lines loss log of a checkpoint (or of the log file itself), as a list of dicts."""
    path = Path(path)
    if path.suffix != ".jsonl":
        path = log_path_for(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _norm(x):
    """Compare configs as JSON sees them (tuples and lists alike)."""
    return json.loads(json.dumps(x, sort_keys=True, default=str))


def _scalar(v) -> float:
    return float(v.detach()) if torch.is_tensor(v) else float(v)


# ------------------------------------------------------------------------------------------- distributed


def dist_info() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) unless a torch.distributed process group is running."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device=None) -> tuple[int, int]:
    """Join the process group when torchrun started this process (RANK, WORLD_SIZE, LOCAL_RANK are set); returns
    dist_info(). NCCL for CUDA (device: the model's; default: CUDA if present), gloo otherwise. A plain `python` or
    `vasa-lite` run has none of those variables and stays a single process, with no group."""
    if (all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")) and dist.is_available()
            and not dist.is_initialized()):
        cuda = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl" if cuda else "gloo")
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return dist_info()


# Components move their model to pick_device() ("cuda": the current GPU) before they build a Trainer, so a torchrun
# worker selects its own GPU as soon as the training code is imported; otherwise every rank would sit on GPU 0.
if "LOCAL_RANK" in os.environ and torch.cuda.is_available():
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))


def shard(batch):
    """This rank's equal part of a global batch: a list, array or tensor cut along its first axis (a dict: each
    value; None stays None). One process gets the whole batch, unchanged.

    Every rank draws the same global batch from the shared generator and keeps its slice, so N ranks together
    train on exactly the batch one process would."""
    rank, world = dist_info()
    if world == 1 or batch is None:
        return batch
    if isinstance(batch, dict):
        return {k: shard(v) for k, v in batch.items()}
    n = len(batch)
    if n % world:
        raise InputError(f"a global batch of {n} does not split evenly over {world} processes; use a batch size "
                         f"divisible by {world}")
    per = n // world
    return batch[rank * per:(rank + 1) * per]


class Trainer:
    """Runs `step_fn` for `steps` optimiser steps with logging, checkpoints and resume.

    path: the final checkpoint (weights plus metadata). While training, `<stem>.resume.pt` holds the full training
    state every `ckpt_every` steps (and on Ctrl-C); it is removed when the run completes. `<stem>.jsonl` gets one
    line per `log_every` steps with the mean of each logged value. extra: saved in the metadata of both files; a
    resume whose extra differs (another architecture) is refused rather than silently mixing two runs.

    Under torchrun (see `init_distributed`): ranks start from rank 0's weights, draw the same batches from the
    generator (seeded `seed` on every rank), seed their global RNG seed + rank, average gradients every step; rank 0
    alone writes files and shows progress, and eval_fn runs on rank 0 only.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, component: str, preset,
                 path, scheduler=None, log_path=None, ckpt_every: int = 250, log_every: int = 10,
                 grad_clip: "float | None" = 1.0, progress: bool = True, extra: "dict | None" = None, seed: int = 0,
                 state_fn: "Callable[[], dict] | None" = None, ema: float = 0.0):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.component, self.preset = component, preset
        self.path = Path(path)
        self.log_path = Path(log_path) if log_path else log_path_for(self.path)
        self.ckpt_every, self.log_every = max(1, int(ckpt_every)), max(1, int(log_every))
        self.grad_clip, self.progress = grad_clip, progress
        self.extra = dict(extra or {})
        self.seed = int(seed)
        # the batch sampler's generator: seeded alike on every rank, so all ranks draw the same global batches
        self.generator = torch.Generator().manual_seed(self.seed)
        self.state_fn = state_fn or model.state_dict
        self.step = 0
        self.elapsed = 0.0   # seconds of training so far, resumed runs included
        if not 0.0 <= float(ema) < 1.0:
            raise InputError(f"ema decay must be in [0, 1), got {ema}")
        # an exponential moving average of the weights (0: off); the final checkpoint and eval_fn use it
        self.ema_decay = float(ema)
        self.ema = ({k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
                    if self.ema_decay > 0 else None)

    # ------------------------------------------------------------------------------------ state on disk
    def _save_resume(self) -> Path:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                 "step": torch.tensor(self.step), "elapsed": torch.tensor(self.elapsed, dtype=torch.float64)}
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        if self.ema is not None:
            state["ema"] = self.ema
        return save_checkpoint(resume_path(self.path), state, component=f"{self.component}-resume",
                               preset=self.preset, steps=self.step, extra=self.extra)

    def _try_resume(self) -> bool:
        rp = resume_path(self.path)
        if not rp.exists():
            return False
        state, meta = load_checkpoint(rp, component=f"{self.component}-resume")
        if _norm(meta.get("extra")) != _norm(self.extra) or meta.get("preset") != _preset_name(self.preset):
            raise CheckpointError(f"{rp} was written by a run with other settings; delete it or pass --no-resume")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and "scheduler" in state:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema = {k: v.clone() for k, v in state["ema"].items()}
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        return True

    def _truncate_log(self, keep_until: int) -> None:
        if not self.log_path.exists():
            return
        lines = [ln for ln in self.log_path.read_text().splitlines()
                 if ln.strip() and json.loads(ln).get("step", 0) <= keep_until]
        self.log_path.write_text("".join(ln + "\n" for ln in lines))

    @torch.no_grad()
    def _update_ema(self) -> None:
        """ema <- d ema + (1 - d) weights, with d warmed up as min(decay, (1 + step) / (10 + step)) so the average
        does not remember the random initialisation (as in DDPM's and EDM's training code)."""
        if self.ema is None:
            return
        d = min(self.ema_decay, (1 + self.step) / (10 + self.step))
        for k, v in self.model.state_dict().items():
            if k in self.ema:
                self.ema[k].lerp_(v.detach(), 1 - d)

    # ----------------------------------------------------------------------------------------- distributed
    def _sync_start(self, rank: int, world: int) -> None:
        """Every rank starts from rank 0's weights (its fresh init or resumed state), with its own global RNG seed."""
        from vasa_lite.device import seed_everything

        for t in [*self.model.parameters(), *self.model.buffers()]:
            dist.broadcast(t.data, src=0)
        # dropout masks and any noise drawn from the global RNG must differ between ranks, and after a resume differ
        # from the steps already done: seed + rank + world * step is unique per (rank, starting step)
        seed_everything(self.seed + rank + world * self.step)

    def _average_across_ranks(self, values: dict, world: int) -> dict:
        """DistributedDataParallel's gradient averaging, by hand: each gradient becomes its mean over the ranks, the
        gradient of the global batch's mean loss (shards are equal). DDP itself only hooks `model(...)`, and the
        components call their models' parts directly (model.pose, model.decode, ...), so it would miss gradients.
        The logged values are averaged in the same all-reduce, so the log shows the global batch."""
        params = [q for g in self.optimizer.param_groups for q in g["params"]]
        dev, n = params[0].device, sum(q.numel() for q in params)
        # a parameter outside this rank's graph counts as a zero gradient (as DDP's find_unused_parameters); one
        # outside every rank's graph keeps no gradient, so the optimiser skips it just as with one process
        has_grad = torch.tensor([q.grad is not None for q in params], dtype=torch.float32, device=dev)
        grads = [(q.grad if q.grad is not None else torch.zeros_like(q)).reshape(-1).float() for q in params]
        logged = torch.tensor(list(values.values()), dtype=torch.float32, device=dev)
        flat = torch.cat([*grads, has_grad, logged])             # one all-reduce per step
        dist.all_reduce(flat)
        flat /= world
        o = 0
        for q, used in zip(params, flat[n:n + len(params)].tolist()):
            mean = flat[o:o + q.numel()].view(q.shape)
            o += q.numel()
            if q.grad is not None:
                q.grad.copy_(mean)
            elif used > 0:
                q.grad = mean.to(q.dtype)
        return dict(zip(values, flat[n + len(params):].tolist()))

    # ------------------------------------------------------------------------------------------ the loop
    def fit(self, step_fn: Callable[[int, torch.Generator], dict], steps: int, *, resume: bool = True,
            eval_fn: "Callable[[], dict] | None" = None) -> dict:
        """Train until `steps` optimiser steps are done; returns a summary with the final metrics and paths.

        eval_fn: called once at the end (model in eval mode); its numbers go into the checkpoint's metrics.
        """
        from tqdm.auto import tqdm

        if steps < 1:
            raise InputError(f"steps must be >= 1, got {steps}")
        rank, world = init_distributed(next(self.model.parameters()).device)
        main = rank == 0                     # the one rank that writes files and shows progress
        resumed = resume and self._try_resume()
        if main and not resume and resume_path(self.path).exists():
            resume_path(self.path).unlink()
        if main:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            if resumed:
                self._truncate_log(self.step)
            else:
                self.log_path.write_text("")
        if world > 1:
            self._sync_start(rank, world)
        start_step = self.step
        sums: dict[str, float] = {}
        n_sum = 0
        recent: list[float] = []
        self.model.train()
        t0 = time.perf_counter()
        bar = tqdm(total=steps, initial=self.step, desc=f"train {self.component}",
                   disable=not (self.progress and main), unit="step", dynamic_ncols=True)
        try:
            with (open(self.log_path, "a") if main else contextlib.nullcontext()) as log:
                while self.step < steps:
                    out = step_fn(self.step, self.generator)
                    self.optimizer.zero_grad(set_to_none=True)
                    out["loss"].backward()
                    values = {k: _scalar(v) for k, v in out.items()}
                    if world > 1:
                        values = self._average_across_ranks(values, world)
                    # checked on the global mean, so that every rank stops together
                    if not math.isfinite(values["loss"]):
                        raise FloatingPointError(f"loss became {values['loss']} at step {self.step}; lower the "
                                                 "learning rate or check the data")
                    if self.grad_clip:
                        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
                    self.optimizer.step()
                    if self.scheduler is not None:
                        self.scheduler.step()
                    self.step += 1
                    self._update_ema()
                    for k, v in values.items():
                        sums[k] = sums.get(k, 0.0) + v
                    n_sum += 1
                    recent = (recent + [values["loss"]])[-50:]
                    bar.update(1)
                    if self.step % self.log_every == 0 or self.step == steps:
                        row = {"step": self.step, **{k: round(v / n_sum, 6) for k, v in sums.items()},
                               "lr": self.optimizer.param_groups[0]["lr"],
                               "time_s": round(self.elapsed + time.perf_counter() - t0, 2)}
                        if main:
                            log.write(json.dumps(row) + "\n")
                            log.flush()
                        bar.set_postfix(loss=f"{row['loss']:.4f}")
                        sums, n_sum = {}, 0
                    if self.step % self.ckpt_every == 0 and self.step < steps:
                        self.elapsed += time.perf_counter() - t0
                        t0 = time.perf_counter()
                        if main:
                            self._save_resume()
        except KeyboardInterrupt:
            self.elapsed += time.perf_counter() - t0
            if main:
                self._save_resume()
            bar.close()
            raise
        bar.close()
        self.elapsed += time.perf_counter() - t0
        self.model.eval()
        if self.ema is not None:             # the averaged weights are the ones evaluated and saved
            self.model.load_state_dict({**self.model.state_dict(), **self.ema})
        if world > 1:
            # buffers are not averaged (BatchNorm's running statistics drift apart); like DDP, rank 0's count
            for t in self.model.buffers():
                dist.broadcast(t.data, src=0)
        metrics = {"final_loss": float(np.mean(recent)) if recent else math.nan,
                   "train_seconds": round(self.elapsed, 1)}
        if main:
            if eval_fn is not None:
                with torch.no_grad():
                    metrics.update(eval_fn())
            save_checkpoint(self.path, self.state_fn(), component=self.component, preset=self.preset,
                            steps=self.step, metrics=metrics, extra={**self.extra, "log": self.log_path.name})
            if resume_path(self.path).exists():
                resume_path(self.path).unlink()
        if world > 1:
            dist.barrier()                   # no rank returns before rank 0 has written the checkpoint
        return {"checkpoint": str(self.path), "log": str(self.log_path), "steps": self.step,
                "resumed_from": start_step if resumed else None, "steps_this_run": self.step - start_step,
                "metrics": metrics}


def _preset_name(preset) -> str:
    from vasa_lite.config import get_preset

    return get_preset(preset).name


def check_component_checkpoint(meta: dict, preset, config, path, training_only=()) -> None:
    """Refuse a checkpoint made for another preset or architecture.

    Checks the preset's name and the component's own config (saved in extra["config"]) rather than the hash of
    the whole preset, so a checkpoint stays valid when another chapter adds its own settings to the presets.
    config: the component's config dataclass (or its dict). training_only: the component's settings that change how
    it is trained, not its weights (not compared). A setting the checkpoint predates counts as its dataclass
    default: new settings default to what older code did.
    """
    name = _preset_name(preset)
    if meta.get("preset") != name:
        raise CheckpointError(f"checkpoint {path} was trained with preset '{meta.get('preset')}', expected '{name}'; "
                              f"pass --preset {meta.get('preset')} or retrain")
    saved = (meta.get("extra") or {}).get("config")
    if saved is None:
        raise CheckpointError(f"checkpoint {path} records no model config; retrain it")
    defaults = {}
    if dataclasses.is_dataclass(config):
        defaults = {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
        config = dataclasses.asdict(config)
    skip = _TRAINING_ONLY | set(training_only)
    arch = {k: v for k, v in config.items() if k not in skip}
    # a setting added after the checkpoint was made, at its default, is the architecture the checkpoint has
    saved = {**{k: v for k, v in defaults.items() if k not in saved}, **saved}
    saved_arch = {k: v for k, v in saved.items() if k not in skip}
    if _norm(saved_arch) != _norm(arch):
        diff = sorted(k for k in set(arch) | set(saved_arch) if arch.get(k) != saved_arch.get(k))
        raise CheckpointError(f"checkpoint {path} was trained with other settings ({', '.join(diff)}); retrain it "
                              f"with `vasa-lite train {meta.get('component')} --preset {name}`")


_LOADED: dict = {}


def load_trained(component: str, preset, path, device, section: Callable, build: Callable, *, frozen: bool = True,
                 training_only=()) -> torch.nn.Module:
    """A trained component of a preset in eval mode, cached per (file, its mtime, preset, device, config).

    section(preset) -> the component's config dataclass (checked against the checkpoint's); build(preset, meta) ->
    an untrained model of that shape (meta: the checkpoint's metadata, for shapes it records). frozen: no gradients
    (instruments). The checkpoint's metadata is kept as `model.meta`. A file of another preset, component or
    architecture is refused with a CheckpointError."""
    from vasa_lite.checkpoints import checkpoint_path
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device

    p = get_preset(preset)
    path = Path(path) if path else checkpoint_path(component, p.name)
    dev = pick_device(device)
    cfg = section(p)
    key = (component, str(path.resolve()), path.stat().st_mtime if path.exists() else None, p.name, str(dev), repr(cfg))
    if key not in _LOADED:
        state, meta = load_checkpoint(path, component=component)
        check_component_checkpoint(meta, p, cfg, path, training_only)
        model = build(p, meta)
        model.load_state_dict(state)
        model.meta = meta
        model = model.to(dev).eval()
        _LOADED[key] = model.requires_grad_(False) if frozen else model
    return _LOADED[key]


# Settings that change how a model is trained or run, not the shape of its weights.
_TRAINING_ONLY = {"steps", "batch_size", "lr", "dropout", "chunk_frames"}


# ------------------------------------------------------------------------------------------------- data


def load_split(preset="cpu", split: str = "train", limit: "int | None" = None, root=None, min_frames: int = 0,
               seed: int = 0, actors: "int | None" = None) -> list[dict]:
    """Raw clips of one world split: {"audio" float32 16 kHz, "tracks" [T, F], "visemes" [T], "meta"} each.

    Read from the built cache (`vasa-lite world build`) when it exists; otherwise made in memory with the same
    seeds, which gives the same clips (the world is deterministic). limit: the first `limit` clips (after the
    min_frames filter), in index order. actors: the split's first `actors` actors instead of the preset's count;
    a held-out split can grow this way (its next seeds are used by nothing else), and clips the cache lacks are
    made in memory.
    """
    from vasa_lite.config import get_preset
    from vasa_lite.world.dataset import SPLITS, clip_seed, default_root, load_clip, make_clip

    p = get_preset(preset)
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    root = Path(root) if root else default_root(p)
    index_path = root / f"{split}.json"
    cfg = p.world
    n_actors = {"train": cfg.n_train_actors, "val": cfg.n_val_actors, "test": cfg.n_test_actors}[split]
    if actors is not None and (isinstance(actors, bool) or not isinstance(actors, (int, np.integer)) or actors < 1):
        raise InputError(f"actors must be a positive whole number, got {actors!r}")
    out = []

    def keep(clip):
        clip["audio"] = clip["audio"].astype(np.float32) / 32767
        if len(clip["visemes"]) >= min_frames:
            out.append(clip)
        return limit is not None and len(out) >= limit

    if index_path.exists() and actors in (None, n_actors):
        for meta in json.loads(index_path.read_text())["clips"]:
            if keep(load_clip(root / split / meta["file"])):
                break
        return out
    from vasa_lite.world.actor import actor_seeds

    for a in actor_seeds(split, n_actors if actors is None else int(actors)):
        for k in range(cfg.clips_per_actor):
            cached = root / split / f"{a:06d}_{k}.npz"       # the name build_world gives it
            if keep(load_clip(cached) if seed == 0 and cached.exists() else make_clip(a, clip_seed(seed, a, k), cfg)):
                return out
    return out


# ----------------------------------------------------------------------------------------------- probes


def linear_probe(train_x, train_y, test_x, test_y, n_classes: "int | None" = None, weight_decay: float = 1e-4,
                 iters: int = 200) -> dict:
    """Fit a multinomial logistic regression on frozen features, report accuracy on held-out ones.

    Features are standardised with the training statistics; full-batch L-BFGS makes the fit deterministic.
    Returns {"train_acc", "test_acc", "n_train", "n_test", "dim"}.
    """
    xtr = torch.as_tensor(np.asarray(train_x), dtype=torch.float32)
    xte = torch.as_tensor(np.asarray(test_x), dtype=torch.float32)
    ytr = torch.as_tensor(np.asarray(train_y), dtype=torch.long)
    yte = torch.as_tensor(np.asarray(test_y), dtype=torch.long)
    if xtr.ndim != 2 or xtr.shape[0] != ytr.shape[0] or xte.shape[0] != yte.shape[0]:
        raise InputError(f"linear_probe wants [N, D] features and [N] labels, got {tuple(xtr.shape)} / "
                         f"{tuple(ytr.shape)} and {tuple(xte.shape)} / {tuple(yte.shape)}")
    n_classes = int(n_classes or int(max(ytr.max(), yte.max())) + 1)
    mean, std = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    lin = torch.nn.Linear(xtr.shape[1], n_classes)
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=iters, history_size=20,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(xtr), ytr) + weight_decay * lin.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        train_acc = (lin(xtr).argmax(1) == ytr).float().mean().item()
        test_acc = (lin(xte).argmax(1) == yte).float().mean().item()
    return {"train_acc": round(train_acc, 4), "test_acc": round(test_acc, 4), "n_train": int(len(ytr)),
            "n_test": int(len(yte)), "dim": int(xtr.shape[1])}
