"""Training the face latent space: `vasa-lite train latent --preset P [--data DIR]`.

Data: pairs of frames of one person. On the world, the latent bank holds `per_actor` renders of each train actor
with the head pose uniform over `pose_range` of its range and expressions taken from the actor's split's clips
(see instruments.banks.pose_bank). With `--data DIR`, frames of each real video (VideoFolder) play the part of one
person, and nothing uses ground truth: the pose supervision is off.

Each step, for B pairs (i, j) of one person and a driver k of another person:
- reconstruction: decode(app_i, pose_j, dyn_j) against frame j (L1 + SSIM);
- transfer consistency: decode(app_j, pose_i, dyn_j) against decode(app_i, pose_i, dyn_j);
- cross-identity: decode(app_i, pose_k, dyn_k) should keep i's identity (the course's identity network);
- weak pose supervision of z_pose (angles, the head's image position and size), when switched on and ground
  truth exists;
- weak dynamics supervision: a linear read-out of z_dyn gives the world's expression factors, when switched on and
  ground truth exists; and the reconstruction counts the mouth and eyes `region_weight` times more (their boxes
  come from the world's landmarks), since they are small but they are what talking moves.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch

from vasa_lite.errors import InputError
from vasa_lite.latent import losses as L
from vasa_lite.latent.geometry import ANCHOR_UP, REF_SCALE
from vasa_lite.latent.model import FaceLatentModel, checkpoint_file
from vasa_lite.world.params import DYNAMICS_NAMES, FACTORS, FRAME_FACTOR_NAMES

ANGLES = [FRAME_FACTOR_NAMES.index(n) for n in ("yaw", "pitch", "roll")]
# the parts of the latent model that make the pixel warp's flow (with the pose and dynamics encoders)
WARP_PARTS = ("pose", "dynamics", "appearance", "identity", "flow", "occupancy")


def pose_targets(tracks: np.ndarray, face_track: np.ndarray, size: int) -> np.ndarray:
    """The world's z_pose [N, 6]: true yaw, pitch, roll (degrees), and the head anchor's image position (tx, ty as
    fractions of the frame from its centre) and size (log of the head unit against REF_SCALE), from the face
    track (mouth-rest x, y px, px per head unit, eye-line angle). Anchoring the rigid transform on a point of the
    head makes z_pose's translation the head's own, so canonical space has the head in the middle."""
    x, y, scale, angle = (face_track[:, k].astype(np.float64) for k in range(4))
    ax = x - ANCHOR_UP * scale * np.sin(angle)        # "up" in the head's frame, rotated with the eye line
    ay = y - ANCHOR_UP * scale * np.cos(angle)
    out = np.c_[tracks[:, ANGLES], ax / size - 0.5, ay / size - 0.5, np.log(scale / size / REF_SCALE)]
    return out.astype(np.float32)


def expression_targets(tracks: np.ndarray) -> np.ndarray:
    """The world's expression factors [N, len(DYNAMICS_NAMES)], each as a fraction of its range (0 at its low end),
    the targets of the dynamics read-out."""
    cols = [FRAME_FACTOR_NAMES.index(n) for n in DYNAMICS_NAMES]
    low = np.array([FACTORS[n].low for n in DYNAMICS_NAMES], np.float32)
    span = np.array([FACTORS[n].high - FACTORS[n].low for n in DYNAMICS_NAMES], np.float32)
    return ((np.asarray(tracks, np.float32)[:, cols] - low) / span).astype(np.float32)


def face_boxes(bank: dict, size: int, batch: int = 1024) -> np.ndarray:
    """The mouth and both eye boxes [N, 3, 4] (x0, y0, x1, y1 px) of a world bank's frames, from the world's
    landmarks of each frame's actor and factors."""
    from vasa_lite.world.actor import sample_actor
    from vasa_lite.world.render import landmarks

    tracks, actor = np.asarray(bank["tracks"]), np.asarray(bank["actor"])
    out = []
    for s in range(0, len(actor), batch):
        sl = slice(s, s + batch)
        lm = landmarks([sample_actor(int(a)) for a in actor[sl]],
                       {n: tracks[sl, j] for j, n in enumerate(FRAME_FACTOR_NAMES)}, size)
        out.append(np.stack([lm["mouth_box"], lm["eye_left_box"], lm["eye_right_box"]], 1))
    return np.concatenate(out).astype(np.float32)


def latent_bank(preset="cpu", split: str = "train", root=None, world_root=None, progress: bool = True,
                per_actor: "int | None" = None) -> dict:
    """The world frames the latent space learns from (train) or is measured on (test); cached on first use.
    per_actor: frames per actor (default: the preset's latent per_actor for train, the instruments' test size else)."""
    from vasa_lite.config import get_preset
    from vasa_lite.instruments.banks import pose_bank

    p = get_preset(preset)
    per_actor = per_actor or (p.latent.per_actor if split == "train" else p.instruments.test_per_actor)
    return pose_bank(p, split, per_actor=per_actor, root=root, world_root=world_root, progress=progress,
                     pose_range=p.latent.pose_range)


def video_bank(data, size: int, progress: bool = True, max_frames_per_video: int = 400) -> dict:
    """Frames of a folder of real talking videos (VideoFolder: face-cropped, resized) as a bank with no ground
    truth; each video counts as one person."""
    from tqdm.auto import tqdm

    from vasa_lite.real import VideoFolder

    vf = VideoFolder(data, size=size)
    frames, actor = [], []
    for i in tqdm(range(len(vf.files)), desc="videos", disable=not progress):
        f = np.asarray(vf.clip(i)["frames"])
        if len(f) < 2:
            continue
        step = max(1, len(f) // max_frames_per_video)
        f = f[::step][:max_frames_per_video]
        frames.append(np.ascontiguousarray(f.transpose(0, 3, 1, 2)))
        actor += [i] * len(f)
    if not frames:
        raise InputError(f"no usable video in {data}: each needs at least 2 frames with a detectable face")
    return {"frames": np.concatenate(frames), "actor": np.asarray(actor), "tracks": None}


class PairSampler:
    """Random (i, j) frame pairs of one person, and a driver k of another person for each pair."""

    def __init__(self, actor: np.ndarray):
        self.actor = np.asarray(actor)
        self.people = np.unique(self.actor)
        self.rows = {a: np.flatnonzero(self.actor == a) for a in self.people}
        self.people = np.asarray([a for a in self.people if len(self.rows[a]) >= 2])
        if len(self.people) < 1:
            raise InputError("the training frames need at least one person with two frames or more")

    def sample(self, batch: int, gen: torch.Generator, self_pairs: float = 0.0) -> tuple:
        pick = self.people[torch.randint(len(self.people), (batch,), generator=gen).numpy()]
        same = (torch.rand(batch, generator=gen) < self_pairs).numpy()
        i, j, k = [], [], []
        for n, a in enumerate(pick):
            r = self.rows[a]
            u = torch.randperm(len(r), generator=gen)[:2].numpy()
            i.append(r[u[0]])
            j.append(r[u[0]] if same[n] else r[u[1]])
            if len(self.people) > 1:                       # a driver from someone else
                others = self.people[self.people != a]
                b = others[int(torch.randint(len(others), (1,), generator=gen))]
                k.append(self.rows[b][int(torch.randint(len(self.rows[b]), (1,), generator=gen))])
        return np.asarray(i), np.asarray(j), (np.asarray(k) if k else None)


def latent_step(model: FaceLatentModel, x_i, x_j, x_k=None, angles=None, id_net=None, cfg=None,
                expression=None, boxes=None) -> dict:
    """One training step's losses for frames i, j (one person), drivers k (others), and optional ground truth: true
    poses [2B, 6] of i then j (pose_targets), expression factors [2B, n] of i then j (expression_targets) and the
    mouth and eye boxes of j [B, 3, 4] (face_boxes). Returns the weighted total as "loss" plus each term."""
    cfg = cfg or model.cfg
    b = x_i.shape[0]
    x = torch.cat([x_i, x_j])
    pose = model.pose(x)
    dyn = model.dynamics_of(x, pose)
    zid = model.identity(x)
    # without dyn_in_decoder the decoder sees z_dyn = 0; the read-out below still sees the real codes
    shown = dyn if cfg.dyn_in_decoder else torch.zeros_like(dyn)
    (p_i, p_j), (d_i, d_j), (id_i, id_j) = pose.split(b), shown.split(b), zid.split(b)
    src_i = model.encode_source(x_i, p_i, d_i, id_i)
    out = {}
    rec = model.decode(src_i, p_j, d_j)
    weight = (L.region_weights(boxes, x_j.shape[-1], cfg.region_weight)
              if boxes is not None and cfg.region_weight > 0 else None)
    out["recon"] = L.reconstruction(rec, x_j, cfg.ssim_weight, weight=weight)
    total = out["recon"]
    if cfg.transfer_weight > 0:
        src_j = model.encode_source(x_j, p_j, d_j, id_j)
        out["transfer"] = L.transfer_consistency(model.decode(src_j, p_i, d_j), model.decode(src_i, p_i, d_j))
        total = total + cfg.transfer_weight * out["transfer"]
    if cfg.cross_id_weight > 0 and id_net is not None and x_k is not None:
        p_k = model.pose(x_k)
        d_k = model.dynamics_of(x_k, p_k) if cfg.dyn_in_decoder else dyn.new_zeros(len(x_k), dyn.shape[1])
        out["cross_id"] = L.cross_identity(id_net, model.decode(src_i, p_k, d_k), x_i)
        total = total + cfg.cross_id_weight * out["cross_id"]
    if cfg.pose_supervision and cfg.pose_weight > 0 and angles is not None:
        out["pose"] = L.pose_supervision(pose, angles)
        total = total + cfg.pose_weight * out["pose"]
    if cfg.dyn_supervision and cfg.dyn_weight > 0 and expression is not None:
        out["dyn"] = L.dynamics_supervision(model.expression_head(dyn), expression)
        total = total + cfg.dyn_weight * out["dyn"]
    with torch.no_grad():
        out["psnr"] = L.psnr(rec.clamp(0, 1), x_j)
    out["loss"] = total
    return out


def warm_up_dynamics(model: FaceLatentModel, frames, expression: torch.Tensor, poses: torch.Tensor, steps: int,
                     batch: int, lr: float, seed: int = 0, progress: bool = True) -> dict:
    """The dynamics encoder and its read-out learn the world's expression factors alone, from face crops placed by
    the true pose, before the whole model trains. It costs seconds (no decoder runs), and it starts z_dyn out
    reading the mouth and eyes instead of whatever the first reconstruction gradients find (which was identity).
    Returns {"steps", "loss_first", "loss_last", "seconds"} (mean squared error of the first and last 10%)."""
    import time

    from tqdm.auto import tqdm

    from vasa_lite.instruments.banks import bank_batch

    dev = model.grid.device
    params = list(model.dynamics.parameters()) + list(model.expression_head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed + 17)
    hist, t0 = [], time.perf_counter()
    for _ in tqdm(range(steps), desc="z_dyn warm-up", disable=not progress, unit="step"):
        i = torch.randint(len(expression), (batch,), generator=gen).numpy()
        x = bank_batch(frames, i).to(dev)
        loss = L.dynamics_supervision(model.expression_head(model.dynamics_of(x, poses[i].to(dev))),
                                      expression[i].to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        hist.append(float(loss.detach()))
    k = max(1, steps // 10)
    return {"steps": int(steps), "loss_first": round(float(np.mean(hist[:k])), 5),
            "loss_last": round(float(np.mean(hist[-k:])), 5), "seconds": round(time.perf_counter() - t0, 1)}


@torch.no_grad()
def poses_of(model: FaceLatentModel, frames, batch: int = 256) -> torch.Tensor:
    """The model's own z_pose [N, 6] of a bank's frames (uint8 or float), on the CPU."""
    from vasa_lite.instruments.banks import bank_batch

    dev = model.grid.device
    return torch.cat([model.pose(bank_batch(frames, np.arange(s, min(len(frames), s + batch))).to(dev)).cpu()
                      for s in range(0, len(frames), batch)])


def readout_r2(model: FaceLatentModel, bank: dict) -> dict:
    """Held-out R^2 of the linear read-out (expression_head) of z_dyn on a bank's frames, per expression factor."""
    from vasa_lite.latent.evaluate import codes_of

    target = expression_targets(bank["tracks"])
    z_dyn = torch.from_numpy(codes_of(model, bank["frames"])["z_dyn"]).to(model.grid.device)
    with torch.no_grad():
        pred = model.expression_head(z_dyn).cpu().numpy()
    r2 = 1 - ((pred - target) ** 2).sum(0) / (((target - target.mean(0)) ** 2).sum(0) + 1e-12)
    return {f"val_r2.{n}": round(float(v), 4) for n, v in zip(DYNAMICS_NAMES, r2)}


def train_dynamics(preset="cpu", init=None, seed: int = 0, device=None, steps: "int | None" = None,
                   resume: bool = True, out=None, progress: bool = True, root=None, world_root=None,
                   lr: "float | None" = None, per_actor: "int | None" = None) -> dict:
    """A new dynamics encoder and read-out for a trained latent model (init), every other part kept: the read-out
    of z_dyn learns the world's expression factors from the face crops that the model's *own* pose encoder places,
    the crops it will see from then on (the later stages keep that pose encoder frozen). Trained on crops placed by
    the true pose (the warm-up), or while the pose encoder still moves (the blind stage), z_dyn reads a trained
    model's crops worse (cpu, test probe R² jaw 0.78, blink 0.68 there; 0.88 and 0.84 after this stage, on its
    own 96-frame-per-actor bank: per_actor). The decoder then learns z_dyn in
    the next stage, so nothing downstream follows a moving code. The held-out R² of each factor is in the
    checkpoint's metrics (val_r2)."""
    from vasa_lite.checkpoints import load_checkpoint
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device, seed_everything
    from vasa_lite.instruments.banks import bank_batch
    from vasa_lite.training import Trainer

    p = get_preset(preset)
    if init is None:
        raise InputError("train_dynamics needs init: the trained latent checkpoint whose dynamics encoder it replaces")
    state, meta = load_checkpoint(init, component="latent")
    if meta.get("preset") != p.name:
        raise InputError(f"--init {init} was trained for preset '{meta.get('preset')}', not '{p.name}'")
    cfg = p.latent
    seed_everything(seed)
    dev = pick_device(device)
    model = FaceLatentModel(cfg, p.world.size).to(dev)
    fresh = ("dynamics", "expression_head")
    model.load_state_dict({k: v for k, v in state.items() if k.split(".")[0] not in fresh}, strict=False)
    for name, part in model.named_children():
        part.requires_grad_(name in fresh)
    bank = latent_bank(p, "train", root=root, world_root=world_root, progress=progress, per_actor=per_actor)
    frames, expression = bank["frames"], torch.from_numpy(expression_targets(bank["tracks"]))
    model.eval()
    pose = poses_of(model, frames)                  # the crops' placement, fixed: the pose encoder is frozen
    steps = int(steps or cfg.steps)
    batch = 2 * cfg.batch_size                      # no decoder runs: a bigger batch costs little
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr or 2 * cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))

    # each factor's error over its variance, so each counts by its R²: blink and gaze, which vary little, as much
    # as the jaw (cpu, test probe R², plain error -> this: blink 0.71 -> 0.78, gaze yaw 0.60 -> 0.65, jaw 0.87 -> 0.84)
    var = expression.var(0)
    weight = (var.mean() / var).to(dev)

    def step_fn(step, gen):
        i = torch.randint(len(expression), (batch,), generator=gen).numpy()
        x = bank_batch(frames, i).to(dev)
        loss = L.dynamics_supervision(model.expression_head(model.dynamics_of(x, pose[i].to(dev))),
                                      expression[i].to(dev), weight)
        return {"loss": loss, "dyn": loss.detach()}

    path = Path(out) if out else checkpoint_file(p).with_name(f"latent_dynamics_{p.name}.pt")
    val = latent_bank(p, "val", root=root, world_root=world_root, progress=False)
    extra = {"config": dataclasses.asdict(cfg), "size": p.world.size, "train_frames": int(len(frames)),
             "per_actor": int(per_actor or cfg.per_actor),
             "data": "world", "init": _init_record(init, fresh), "frozen": [n for n, _ in model.named_children()
                                                                            if n not in fresh]}
    trainer = Trainer(model, opt, component="latent", preset=p, path=path, scheduler=sched, seed=seed,
                      progress=progress, ckpt_every=max(20, min(1000, steps // 10)), log_every=10, extra=extra)
    summary = trainer.fit(step_fn, steps, resume=resume, eval_fn=lambda: readout_r2(model, val))
    summary["parameters"] = sum(q.numel() for q in params)
    return summary


def _init_record(init, new_parts=()) -> "dict | None":
    """What a fine-tune started from: the file name, its steps and training time (for the metadata)."""
    if init is None:
        return None
    from vasa_lite.checkpoints import load_checkpoint

    _, meta = load_checkpoint(init, component="latent")
    return {"file": Path(init).name, "steps": meta["steps"], "new_parts": list(new_parts),
            "train_seconds": (meta.get("metrics") or {}).get("train_seconds")}


def save_preview(model: FaceLatentModel, x_src, x_drv, path) -> Path:
    """A PNG of sources, drivers and reenactments (rows), the training preview."""
    from PIL import Image

    from vasa_lite.viz import as_uint8_hwc

    was = model.training
    model.eval()
    with torch.no_grad():
        out = model.reenact(x_src, x_drv).clamp(0, 1)
    model.train(was)
    rows = [torch.cat(list(t), -1) for t in (x_src, x_drv, out)]
    img = as_uint8_hwc(torch.cat(rows, -2)[None])[0]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def train_latent(preset="cpu", seed: int = 0, device=None, steps: "int | None" = None, resume: bool = True,
                 out=None, progress: bool = True, root=None, world_root=None, data=None, overrides=None,
                 preview_every: int = 250, init=None, fresh=(), freeze=()) -> dict:
    """Train the latent space; returns a summary (checkpoint, log, steps, metrics, training time).

    overrides: LatentConfig fields to change (the ablations: {"transfer_weight": 0}, {"cross_id_weight": 0},
    {"pose_supervision": False}); data: a folder of real videos instead of the world; init: a latent checkpoint
    of the same preset to start from (fine-tuning), recorded in the metadata; fresh: parts of the model
    (e.g. "dynamics") that start anew instead of taking init's weights; freeze: parts that keep their weights
    (e.g. "pose" and "dynamics", so that motion codes already computed with init stay valid)."""
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device, seed_everything
    from vasa_lite.instruments.banks import bank_batch
    from vasa_lite.paths import OUTPUTS_DIR
    from vasa_lite.training import Trainer

    p = get_preset(preset)
    cfg = dataclasses.replace(p.latent, **(overrides or {}))
    init_state = None
    if init is not None:
        from vasa_lite.checkpoints import load_checkpoint
        from vasa_lite.latent.model import RECORDED, recorded_config

        init_state, meta = load_checkpoint(init, component="latent")
        if meta.get("preset") != p.name:
            raise InputError(f"--init {init} was trained for preset '{meta.get('preset')}', not '{p.name}'")
        # a fine-tune decodes as its start did (its RECORDED settings), unless the overrides say otherwise
        kept = recorded_config(p.latent, meta)
        cfg = dataclasses.replace(cfg, **{k: getattr(kept, k) for k in RECORDED if k not in (overrides or {})})
    seed_everything(seed)
    dev = pick_device(device)
    if data is not None:
        bank = video_bank(data, p.world.size, progress=progress)
        # real videos have no ground-truth pose, expression or landmarks
        cfg = dataclasses.replace(cfg, pose_supervision=False, dyn_supervision=False)
    else:
        bank = latent_bank(p, "train", root=root, world_root=world_root, progress=progress)
    frames = bank["frames"]
    angles = (torch.from_numpy(pose_targets(np.asarray(bank["tracks"]), np.asarray(bank["track"]), p.world.size))
              if bank.get("tracks") is not None else None)
    world = bank.get("tracks") is not None
    expression = torch.from_numpy(expression_targets(bank["tracks"])) if world else None
    boxes = torch.from_numpy(face_boxes(bank, p.world.size)) if world and cfg.region_weight > 0 else None
    sampler = PairSampler(bank["actor"])
    try:
        from vasa_lite.instruments.identity import load_identity

        id_net = load_identity(p, device=dev) if cfg.cross_id_weight > 0 else None
    except (OSError, Exception) as err:                 # no identity checkpoint: train without the loss, say so
        from vasa_lite.errors import CheckpointError

        if not isinstance(err, (OSError, CheckpointError)):
            raise
        print(f"note: no identity network for preset '{p.name}' ({err}); training without the cross-identity loss")
        id_net = None
    model = FaceLatentModel(cfg, p.world.size).to(dev)
    new_parts = []
    if init_state is not None:                      # fine-tune: take every weight whose shape still fits
        # no config-hash check: a fine-tune may change the architecture; shapes decide what carries over
        own = model.state_dict()
        fits = {k: v for k, v in init_state.items() if k in own and own[k].shape == v.shape
                and k.split(".")[0] not in set(fresh)}
        new_parts = sorted({k.split(".")[0] for k in own if k not in fits})
        model.load_state_dict(fits, strict=False)
    from vasa_lite.training import resume_path

    path = Path(out) if out else checkpoint_file(p)
    warm_up = None
    if resume and resume_path(path).exists():        # the interrupted run's record (its weights include the warm-up)
        from vasa_lite.checkpoints import load_checkpoint

        warm_up = (load_checkpoint(resume_path(path), component="latent-resume")[1].get("extra") or {}).get("dyn_warm_up")
    elif (expression is not None and cfg.dyn_supervision and cfg.dyn_warmup > 0
          and (init is None or "dynamics" in new_parts)):                # a new dynamics encoder only
        warm_up = warm_up_dynamics(model, frames, expression, angles, cfg.dyn_warmup, 2 * cfg.batch_size,
                                   2 * cfg.lr, seed, progress)
    parts = dict(model.named_children())
    unknown = sorted(set(freeze) - set(parts))
    if unknown:
        raise InputError(f"cannot freeze {unknown}: the latent model's parts are {', '.join(parts)}")
    moving = sorted(set(WARP_PARTS) - set(freeze))
    if cfg.self_flow and moving:
        # the correction cancels whatever error the driving warp shares with the source's own, so a warp trained
        # under it drifts (see pipeline.SELF_FLOW_STAGE)
        raise InputError(f"self_flow is on, so the parts that make the warp must stay frozen; add {', '.join(moving)} "
                         "to freeze, or train with self_flow=0 (--set self_flow=0)")
    for name in freeze:
        parts[name].requires_grad_(False)
    steps = int(steps or cfg.steps)
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=cfg.lr, weight_decay=1e-4,
                            betas=(0.9, 0.99))
    warm = max(1, min(200, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))))
    preview = OUTPUTS_DIR / f"{path.stem}_preview.png"
    gp = torch.Generator().manual_seed(seed + 1)
    pi, pj, _ = sampler.sample(4, gp)
    fixed = (bank_batch(frames, pi).to(dev), bank_batch(frames, pj).to(dev))

    def step_fn(step, gen):
        from vasa_lite.training import dist_info, shard

        # every rank draws the same global batch of pairs from the shared generator and trains on its shard
        i, j, k = (shard(a) for a in sampler.sample(cfg.batch_size, gen, cfg.self_pairs))
        x_i, x_j = bank_batch(frames, i).to(dev), bank_batch(frames, j).to(dev)
        x_k = bank_batch(frames, k).to(dev) if k is not None else None
        ang = torch.cat([angles[i], angles[j]]).to(dev) if angles is not None else None
        expr = torch.cat([expression[i], expression[j]]).to(dev) if expression is not None else None
        res = latent_step(model, x_i, x_j, x_k, ang, id_net, cfg, expr,
                          boxes[j].to(dev) if boxes is not None else None)
        if preview_every and (step + 1) % preview_every == 0 and dist_info()[0] == 0:   # rank 0 writes files
            save_preview(model, *fixed, preview)
        return res

    extra = {"config": dataclasses.asdict(cfg), "size": p.world.size, "train_frames": int(len(frames)),
             "people": int(len(sampler.people)), "data": str(data) if data is not None else "world",
             "init": _init_record(init, new_parts), "dyn_warm_up": warm_up, "frozen": sorted(freeze)}
    trainer = Trainer(model, opt, component="latent", preset=p, path=path, scheduler=sched, seed=seed,
                      progress=progress, ckpt_every=max(20, min(500, steps // 10)), log_every=10, extra=extra)
    summary = trainer.fit(step_fn, steps, resume=resume)
    from vasa_lite.training import dist_info

    if dist_info()[0] == 0:                         # under torchrun, only rank 0 writes files
        save_preview(model, *fixed, preview)
        if bank.get("tracks") is not None:          # slider directions need ground truth (world data only)
            from vasa_lite.latent.controls import attach_controls

            attach_controls(p, path, bank, model=model)
    summary["preview"] = str(preview)
    summary["dyn_warm_up"] = warm_up
    summary["parameters"] = sum(q.numel() for q in model.parameters())
    summary["size_mb"] = round(path.stat().st_size / 2**20, 2)
    return summary
