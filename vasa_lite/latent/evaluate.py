"""Measuring the latent space: `vasa-lite eval latent` (JSON) and `vasa-lite bench latent`.

Every figure is on the world's *test* actors, never seen in training:
- self reconstruction: each frame decoded from its own codes (PSNR, SSIM);
- same-identity reenactment: source frame i with the motion codes of frame j of the same actor, against frame j;
- cross-identity reenactment (the headline): actor A with the motion codes of actor B's frame, against the world's
  own render of A with B's pose and dynamics parameters. Only a world with ground truth can score this.
  These three are measured twice: on talking motion (frames of the test clips: the headline, what the model is
  for) and on random-pose pairs of the test bank (head pose uniform over the bank's range: much larger moves);
- disentanglement probes: held-out linear regression (fit on train-actor codes, scored on test actors) of the true
  factors from z_pose and z_dyn (R^2), and identity accuracy of a linear classifier from the motion codes;
- pose control: decode with a requested yaw or pitch, estimate it back with the attribute estimator (an
  instrument trained apart from this model), mean absolute error in degrees;
- identity similarity of reenacted frames (the identity network's cosine against the source);
- expression transfer: whether reenacted frames *show* the driver's jaw, eyelids, smile and gaze, read back by the
  attribute estimator (Pearson r with the driver's true values).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from vasa_lite.latent import losses as L
from vasa_lite.latent.model import FaceLatentModel
from vasa_lite.world.params import FRAME_FACTOR_NAMES

PROBE_FACTORS = ("yaw", "pitch", "roll", "jaw", "blink", "gaze_yaw", "gaze_pitch", "lip_round", "smile", "brow_raise")


@torch.no_grad()
def codes_of(model: FaceLatentModel, frames, batch: int = 64) -> dict:
    """z_pose [N, 6] and z_dyn [N, dyn_dim] of uint8 or float frames [N, 3, S, S], as numpy."""
    from vasa_lite.instruments.banks import bank_batch

    pose, dyn = [], []
    for s in range(0, len(frames), batch):
        x = bank_batch(frames, np.arange(s, min(len(frames), s + batch))) if isinstance(frames, np.ndarray) \
            and frames.dtype == np.uint8 else torch.as_tensor(frames[s:s + batch])
        p, d = model.encode_motion(x)
        pose.append(p.cpu().numpy())
        dyn.append(d.cpu().numpy())
    return {"z_pose": np.concatenate(pose), "z_dyn": np.concatenate(dyn)}


def ridge_predict(train_x, train_y, test_x, lam: float = 1e-2) -> np.ndarray:
    """A ridge regression fitted on (train_x, train_y), features standardised on the training set, applied to test_x."""
    xm, xs = train_x.mean(0), train_x.std(0) + 1e-6
    a = np.c_[(train_x - xm) / xs, np.ones(len(train_x))]
    b = np.c_[(test_x - xm) / xs, np.ones(len(test_x))]
    w = np.linalg.solve(a.T @ a + lam * len(a) * np.eye(a.shape[1]), a.T @ train_y)
    return b @ w


def ridge_r2(train_x, train_y, test_x, test_y, lam: float = 1e-2) -> np.ndarray:
    """Held-out R^2 per target column of a ridge regression (features standardised on the training set)."""
    pred = ridge_predict(train_x, train_y, test_x, lam)
    ss_res = ((test_y - pred) ** 2).sum(0)
    ss_tot = ((test_y - test_y.mean(0)) ** 2).sum(0) + 1e-12
    return 1 - ss_res / ss_tot


def probes(model: FaceLatentModel, train_bank: dict, test_bank: dict, n_train: int = 3000, seed: int = 0) -> dict:
    """R^2 of the true factors from z_pose and from z_dyn, and identity accuracy from the motion codes."""
    from vasa_lite.training import linear_probe

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(train_bank["actor"]), min(n_train, len(train_bank["actor"])), replace=False))
    tr = codes_of(model, train_bank["frames"][rows])
    te = codes_of(model, test_bank["frames"])
    cols = [FRAME_FACTOR_NAMES.index(n) for n in PROBE_FACTORS]
    ytr, yte = np.asarray(train_bank["tracks"])[rows][:, cols], np.asarray(test_bank["tracks"])[:, cols]
    out = {}
    for code in ("z_pose", "z_dyn"):
        r2 = ridge_r2(tr[code], ytr, te[code], yte)
        out[code] = {n: round(float(v), 4) for n, v in zip(PROBE_FACTORS, r2)}
        out[code]["head_angles"] = round(float(np.mean(r2[:3])), 4)
    # who is it, from the motion codes alone: half of each test actor's frames train the classifier
    actor = np.asarray(test_bank["actor"])
    people, labels = np.unique(actor, return_inverse=True)
    first = np.zeros(len(actor), bool)
    for a in range(len(people)):
        r = np.flatnonzero(labels == a)
        first[r[: len(r) // 2]] = True
    motion = np.c_[te["z_pose"], te["z_dyn"]]
    acc = linear_probe(motion[first], labels[first], motion[~first], labels[~first], n_classes=len(people))
    appearance = identity_codes(model, test_bank["frames"])
    acc_id = linear_probe(appearance[first], labels[first], appearance[~first], labels[~first], n_classes=len(people))
    out["identity_accuracy"] = {"from_motion_codes": acc["test_acc"], "from_z_id": acc_id["test_acc"],
                                "chance": round(1 / len(people), 4)}
    return out


@torch.no_grad()
def identity_codes(model: FaceLatentModel, frames, batch: int = 64) -> np.ndarray:
    from vasa_lite.instruments.banks import bank_batch

    return np.concatenate([model.identity(bank_batch(frames, np.arange(s, min(len(frames), s + batch)))
                                          .to(model.grid.device)).cpu().numpy()
                           for s in range(0, len(frames), batch)])


def _scores(pred: torch.Tensor, target: torch.Tensor) -> tuple:
    return L.psnr(pred, target, reduce=False).cpu().numpy(), L.ssim(pred, target, reduce=False).cpu().numpy()


def _summary(psnr_v, ssim_v) -> dict:
    return {"psnr_db": round(float(np.mean(psnr_v)), 2), "ssim": round(float(np.mean(ssim_v)), 4),
            "n": int(len(psnr_v))}


@torch.no_grad()
def reenactment_scores(model: FaceLatentModel, bank: dict, n_pairs: int = 320, seed: int = 0, batch: int = 32,
                       id_net=None) -> dict:
    """Self reconstruction, same-identity and cross-identity reenactment (PSNR, SSIM) and identity similarity."""
    from vasa_lite.instruments.banks import bank_batch
    from vasa_lite.world.actor import sample_actor
    from vasa_lite.world.render import Renderer

    rng = np.random.default_rng(seed)
    actor = np.asarray(bank["actor"])
    tracks = np.asarray(bank["tracks"])
    frames = bank["frames"]
    n = len(actor)
    people = np.unique(actor)
    renderer = Renderer(model.size)
    dev = model.grid.device
    src_rows = rng.choice(n, min(n_pairs, n), replace=False)

    def batches():
        for s in range(0, len(src_rows), batch):
            i = src_rows[s:s + batch]
            # same identity: another frame of the same actor; cross: a frame of another actor
            j = np.asarray([rng.choice(np.flatnonzero((actor == actor[a]) & (np.arange(n) != a))) for a in i])
            k = np.asarray([rng.choice(np.flatnonzero(actor != actor[a])) for a in i]) if len(people) > 1 else j
            # the truth for cross: actor A (of frame i) rendered with B's (frame k's) pose and dynamics
            truth = renderer.render([sample_actor(int(a)) for a in actor[i]],
                                    {name: tracks[k, c] for c, name in enumerate(FRAME_FACTOR_NAMES)})
            yield tuple(bank_batch(frames, r).to(dev) for r in (i, j, k)) + (truth.to(dev),)

    return _score_batches(model, batches(), id_net)


def _score_batches(model: FaceLatentModel, batches, id_net=None) -> dict:
    """PSNR and SSIM of self reconstruction, same- and cross-identity reenactment over batches of (source, same-
    identity driver, other-identity driver, the world's render of the source with that driver's motion), and the
    identity network's similarity of each reenactment to its source."""
    res = {k: ([], []) for k in ("self", "same", "cross")}
    sim = {"same": [], "cross": []}
    for x_src, x_same, x_other, truth in batches:
        src = model.encode_source(x_src)
        outs = {"self": (model.decode(src, src["z_pose"], src["z_dyn"]).clamp(0, 1), x_src),
                "same": (model.decode(src, *model.encode_motion(x_same)).clamp(0, 1), x_same),
                "cross": (model.decode(src, *model.encode_motion(x_other)).clamp(0, 1), truth)}
        for key, (pred, tgt) in outs.items():
            p, q = _scores(pred, tgt)
            res[key][0].append(p)
            res[key][1].append(q)
        if id_net is not None:
            ref = id_net.embed(x_src)
            for key in sim:
                sim[key].append((id_net.embed(outs[key][0]) * ref).sum(-1).cpu().numpy())
    out = {key: _summary(np.concatenate(v[0]), np.concatenate(v[1])) for key, v in res.items()}
    if id_net is not None:
        for key in sim:
            out[key]["identity_similarity"] = round(float(np.mean(np.concatenate(sim[key]))), 4)
    return out


@torch.no_grad()
def clip_scores(model: FaceLatentModel, clips: list, n_pairs: int = 320, seed: int = 0, batch: int = 32,
                id_net=None) -> dict:
    """The same three scores on talking motion: frames of the test split's clips (natural head motion and speech
    expressions, each clip at its own distance), rendered on the fly. Source: a frame of actor A's clip; same
    identity: another frame of A's clips; cross identity: a frame of actor B's clip as the driver, scored against
    the world's render of A with that frame's pose and dynamics."""
    from vasa_lite.world.actor import sample_actor
    from vasa_lite.world.render import Renderer

    rng = np.random.default_rng([seed, 3])
    renderer = Renderer(model.size)
    owner = np.asarray([c["meta"]["actor_seed"] for c in clips])
    dev = model.grid.device

    def frame_of(ci):
        return clips[ci]["tracks"][int(rng.integers(len(clips[ci]["tracks"])))]

    def render(seeds, rows):
        return renderer.render([sample_actor(int(a)) for a in seeds],
                               {name: np.asarray(rows)[:, c] for c, name in enumerate(FRAME_FACTOR_NAMES)}).to(dev)

    def batches():
        for s in range(0, n_pairs, batch):
            m = min(batch, n_pairs - s)
            ca = rng.integers(len(clips), size=m)
            a = owner[ca]
            ca2 = np.asarray([rng.choice(np.flatnonzero(owner == x)) for x in a])
            cb = np.asarray([rng.choice(np.flatnonzero(owner != x)) for x in a]) if len(set(owner)) > 1 else ca2
            t_src, t_same, t_b = ([frame_of(c) for c in cc] for cc in (ca, ca2, cb))
            yield render(a, t_src), render(a, t_same), render(owner[cb], t_b), render(a, t_b)

    return _score_batches(model, batches(), id_net)


@torch.no_grad()
def pose_control(model: FaceLatentModel, bank: dict, attributes, n_sources: int = 32, seed: int = 0,
                 yaws=(-20.0, -10.0, 0.0, 10.0, 20.0), pitches=(-12.0, -6.0, 0.0, 6.0, 12.0)) -> dict:
    """Decode sources with a requested yaw (or pitch), estimate it back from the pixels; MAE in degrees."""
    from vasa_lite.instruments.banks import bank_batch

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(bank["actor"]), min(n_sources, len(bank["actor"])), replace=False))
    x = bank_batch(bank["frames"], rows).to(model.grid.device)
    src = model.encode_source(x)
    out = {}
    for name, col, values in (("yaw", 0, yaws), ("pitch", 1, pitches)):
        errs = []
        for v in values:
            pose = src["z_pose"].clone()
            pose[:, col] = v
            est = attributes.predict(model.decode(src, pose, src["z_dyn"]).clamp(0, 1))[name]
            errs.append(np.abs(est - v))
        out[f"{name}_mae_deg"] = round(float(np.mean(errs)), 3)
        out[f"{name}_requested_deg"] = [float(v) for v in values]
    out["mae_deg"] = round((out["yaw_mae_deg"] + out["pitch_mae_deg"]) / 2, 3)
    return out


TRANSFER_FACTORS = ("jaw", "blink", "smile", "gaze_yaw", "gaze_pitch")


@torch.no_grad()
def expression_transfer(model: FaceLatentModel, bank: dict, attributes, per_actor: int = 4, batch: int = 32) -> dict:
    """Does the decoder *show* the driving expression? Each test actor's first frame is the source, its next
    frames the drivers (same person: only the motion differs). The attribute estimator reads each factor from the
    reenacted frames; Pearson r with the drivers' true values, beside r for the drivers themselves (how well the
    estimator reads it at all) and for the unmoved source (no transfer: about 0). r can be high while the change is
    small, so the gain (the least-squares slope of the reading on the truth: 1 shows the whole change, 0 none) is
    reported beside it, for the reenacted frames and the drivers."""
    from vasa_lite.instruments.banks import bank_batch

    actor = np.asarray(bank["actor"])
    src, drv = [], []
    for a in np.unique(actor):
        r = np.flatnonzero(actor == a)
        src += [r[0]] * min(per_actor, len(r) - 1)
        drv += list(r[1:1 + per_actor])
    src, drv = np.asarray(src), np.asarray(drv)
    reen = []
    for s in range(0, len(src), batch):
        xi, xj = bank_batch(bank["frames"], src[s:s + batch]), bank_batch(bank["frames"], drv[s:s + batch])
        reen.append(model.reenact(xi.to(model.grid.device), xj.to(model.grid.device)).clamp(0, 1).cpu())
    est = attributes.predict(torch.cat(reen))
    est_drv = attributes.predict(bank_batch(bank["frames"], drv))
    est_src = attributes.predict(bank_batch(bank["frames"], src))
    out = {}
    for f in TRANSFER_FACTORS:
        truth = np.asarray(bank["tracks"])[drv, FRAME_FACTOR_NAMES.index(f)]

        def r(x):
            return round(float(np.corrcoef(x, truth)[0, 1]), 3) if np.std(x) > 0 else 0.0

        def gain(x):
            return round(float(np.polyfit(truth, x, 1)[0]), 3) if np.std(truth) > 0 else 0.0

        out[f] = {"reenacted_r": r(est[f]), "driver_r": r(est_drv[f]), "source_r": r(est_src[f]),
                  "reenacted_gain": gain(est[f]), "driver_gain": gain(est_drv[f])}
    out["pairs"] = int(len(src))
    return out


def eval_latent(preset="cpu", seed: int = 0, device=None, checkpoint=None, limit: "int | None" = None,
                progress: bool = True, root=None, world_root=None, model: "FaceLatentModel | None" = None) -> dict:
    """Every figure of the latent space on the test actors (see the module doc); `limit` caps the pairs."""
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device
    from vasa_lite.instruments.attributes import load_attributes
    from vasa_lite.instruments.identity import load_identity
    from vasa_lite.latent.model import load_latent
    from vasa_lite.latent.train import latent_bank

    p = get_preset(preset)
    dev = pick_device(device)
    t0 = time.perf_counter()
    model = model if model is not None else load_latent(p, checkpoint, dev)
    model.eval()
    test = latent_bank(p, "test", root=root, world_root=world_root, progress=progress)
    train = latent_bank(p, "train", root=root, world_root=world_root, progress=progress)
    id_net = load_identity(p, device=dev)
    n_pairs = int(limit) if limit else 320
    out = {"component": "latent", "preset": p.name, "size_px": p.world.size, "device": str(dev),
           "test_actors": int(len(np.unique(test["actor"]))), "test_frames": int(len(test["actor"]))}
    # headline: talking motion from the test clips; beside it, the harder random-pose pairs of the test bank
    from vasa_lite.training import load_split

    clips = load_split(p, "test", root=world_root)
    out.update(clip_scores(model, clips, n_pairs=n_pairs, seed=seed, id_net=id_net))
    out["random_pose_pairs"] = reenactment_scores(model, test, n_pairs=n_pairs, seed=seed, id_net=id_net)
    out["probes"] = probes(model, train, test, seed=seed)
    attributes = load_attributes(p, device=dev)
    out["pose_control"] = pose_control(model, test, attributes, seed=seed)
    out["expression_transfer"] = expression_transfer(model, test, attributes)
    meta = getattr(model, "meta", {}) or {}
    out["checkpoint"] = {"steps": meta.get("steps"), "train_seconds": (meta.get("metrics") or {}).get("train_seconds"),
                         "version": meta.get("version")}
    out["targets"] = targets_met(out)
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    return out


TARGETS = {"self_psnr_db": 30.0, "cross_psnr_db": 25.0, "pose_r2_from_z_dyn_max": 0.2, "jaw_r2_from_z_dyn": 0.9,
           "blink_r2_from_z_dyn": 0.9, "pose_control_mae_deg_max": 3.0}


def targets_met(r: dict) -> dict:
    """Each target of the cpu preset, with the measured value and whether it is met."""
    z = r["probes"]["z_dyn"]
    rows = {"self_psnr_db": (r["self"]["psnr_db"], r["self"]["psnr_db"] >= TARGETS["self_psnr_db"]),
            "cross_psnr_db": (r["cross"]["psnr_db"], r["cross"]["psnr_db"] >= TARGETS["cross_psnr_db"]),
            "pose_r2_from_z_dyn_max": (z["head_angles"], z["head_angles"] <= TARGETS["pose_r2_from_z_dyn_max"]),
            "jaw_r2_from_z_dyn": (z["jaw"], z["jaw"] >= TARGETS["jaw_r2_from_z_dyn"]),
            "blink_r2_from_z_dyn": (z["blink"], z["blink"] >= TARGETS["blink_r2_from_z_dyn"]),
            "pose_control_mae_deg_max": (r["pose_control"]["mae_deg"],
                                         r["pose_control"]["mae_deg"] <= TARGETS["pose_control_mae_deg_max"])}
    return {k: {"target": TARGETS[k], "measured": v, "met": bool(ok)} for k, (v, ok) in rows.items()}


def bench_latent(preset="cpu", seed: int = 0, device=None, frames=None, batch: int = 32, checkpoint=None) -> dict:
    """Decoder frames/s at the preset's size, batched, one source animated by many motions (the live use), plus
    the one-off cost of encoding a source. Random weights when no checkpoint exists: speed does not depend on them."""
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device
    from vasa_lite.latent.model import checkpoint_file, load_latent

    p = get_preset(preset)
    dev = pick_device(device)
    torch.manual_seed(seed)
    path = checkpoint or checkpoint_file(p)
    try:
        model, weights = load_latent(p, path, dev), str(path)
    except Exception:                                    # speed only: an untrained model of the same shape
        model, weights = FaceLatentModel(p.latent, p.world.size).to(dev).eval(), "random"
    n = int(frames or 256)
    s = p.world.size
    x = torch.rand(1, 3, s, s, device=dev)
    with torch.no_grad():
        t0 = time.perf_counter()
        src = model.encode_source(x)
        enc_ms = (time.perf_counter() - t0) * 1000
        pose = src["z_pose"].repeat(batch, 1) + torch.randn(batch, 6, device=dev) * torch.tensor(
            [8.0, 5.0, 4.0, 0.02, 0.02, 0.05], device=dev)
        dyn = src["z_dyn"].repeat(batch, 1) + 0.3 * torch.randn(batch, src["z_dyn"].shape[1], device=dev)
        model.decode(src, pose, dyn)                      # warm-up
        t0 = time.perf_counter()
        done = 0
        while done < n:
            model.decode(src, pose, dyn)
            done += batch
        wall = time.perf_counter() - t0
    fps = done / wall
    return {"target": "latent", "preset": p.name, "size_px": s, "device": str(dev), "threads": torch.get_num_threads(),
            "weights": weights, "batch": batch, "frames": done, "decode_frames_per_s": round(fps, 1),
            "decode_ms_per_frame": round(1000 / fps, 2), "encode_source_ms": round(enc_ms, 1),
            "target_frames_per_s": 100 if s == 128 else None, "meets_target": bool(s != 128 or fps >= 100)}


# The ablations of notebook 02: each switches one loss off (overrides of LatentConfig).
ABLATIONS = {"full": {}, "no_transfer": {"transfer_weight": 0.0}, "no_cross_id": {"cross_id_weight": 0.0},
             "no_pose_supervision": {"pose_supervision": False},
             "no_dyn_supervision": {"dyn_supervision": False, "region_weight": 0.0}}


def ablation(preset="cpu", steps: int = 400, out_dir=None, limit: int = 160, seed: int = 0, progress: bool = True,
             names=tuple(ABLATIONS), out_json=None, common=None) -> dict:
    """Train one short run per ablation (same steps, seed and data) and measure each: what breaks without each
    loss. common: config changes for every run (e.g. a shorter {"dyn_warmup": 1000}). Returns {name: key
    figures}; with out_json, also writes them there."""
    import json
    from pathlib import Path

    from vasa_lite.config import get_preset
    from vasa_lite.latent.model import load_latent
    from vasa_lite.latent.train import train_latent
    from vasa_lite.paths import OUTPUTS_DIR

    p = get_preset(preset)
    out_dir = Path(out_dir) if out_dir else OUTPUTS_DIR / "ablation"
    table = {}
    for name in names:
        path = out_dir / f"latent_{p.name}_{name}.pt"
        s = train_latent(p, seed=seed, steps=steps, out=path, progress=progress,
                         overrides={**(common or {}), **ABLATIONS[name]}, preview_every=0)
        r = eval_latent(p, seed=seed, model=load_latent(p, path), limit=limit, progress=progress)
        table[name] = {"steps": steps, "train_seconds": s["metrics"]["train_seconds"], "overrides": ABLATIONS[name],
                       "self_psnr_db": r["self"]["psnr_db"], "same_psnr_db": r["same"]["psnr_db"],
                       "cross_psnr_db": r["cross"]["psnr_db"],
                       "cross_identity_similarity": r["cross"].get("identity_similarity"),
                       "pose_r2_from_z_dyn": r["probes"]["z_dyn"]["head_angles"],
                       "pose_r2_from_z_pose": r["probes"]["z_pose"]["head_angles"],
                       "jaw_r2_from_z_dyn": r["probes"]["z_dyn"]["jaw"],
                       "blink_r2_from_z_dyn": r["probes"]["z_dyn"]["blink"],
                       "identity_acc_from_motion": r["probes"]["identity_accuracy"]["from_motion_codes"],
                       "identity_chance": r["probes"]["identity_accuracy"]["chance"],
                       "pose_control_mae_deg": r["pose_control"]["mae_deg"]}
        if out_json:
            Path(out_json).parent.mkdir(parents=True, exist_ok=True)
            Path(out_json).write_text(json.dumps({"preset": p.name, "steps": steps, "common": common or {},
                                                  "runs": table}, indent=2) + "\n")
    return table
