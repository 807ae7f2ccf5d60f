"""The paper's table at course scale (`vasa-lite eval all`, notebook 07).

Every row generates (or takes) a video for each held-out clip's speech and the clip's first frame as the portrait,
and every video is measured by the same instruments (metrics.evaluate):

- **real**: the world's own clip, the ceiling;
- **still head (lip sync only)**: the regression baseline's facial dynamics with the head held at the portrait's
  pose, the course's stand-in for the older audio-to-lips methods;
- **regression**: the same network trained to predict motion directly (chapter 04);
- **diffusion, no guidance** and **diffusion, guidance** (audio 0.5, gaze 1.0): 50 DDPM steps;
- **diffusion, audio guidance only** (audio 0.5, gaze 0): which of the two guided conditions moves Sc;
- **diffusion, guidance, pose as sampled**: the same without the generators' low-pass filter on z_pose
  (motion.generate.filter_pose; every other generated row has it), so what the filter does is in the table;
- **diffusion, 10 steps (DDIM)**, with guidance;
- **mel features**: a generator trained on generic log-mel features instead of the pretrained audio encoder
  (`vasa-lite train motion --features mel`);
- **no transfer consistency**: a latent space trained without VASA's pairwise transfer loss, with a generator trained
  on its codes (`vasa-lite train ablations`);
- **transfer consistency (control)**: the same stages with the loss on (`vasa-lite train ablations` too). The shipped
  latent may come from another chain of stages, so this row, not the shipped one, is what the ablation compares with.
A row whose checkpoints are missing is left out with a note saying how to train it.

Columns: Sc, Sd, CAPP, ΔP, FVD-lite and identity similarity, each a mean over clips with a 95% bootstrap confidence
interval (clips resampled with replacement; the same resamples for every row, so rows are compared on the same
clips). FVD-lite is a distance between two sets, so each resample recomputes it from the resampled clips' features;
repeated clips shrink a set's spread and bias that distance up, so its interval can sit above the full-set value.
The paper's conclusions are tested as directions: paired differences between rows, with their own intervals.
`test_clips` grows the test split with further held-out actors when the preset's has fewer clips than asked for.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from vasa_lite.errors import CheckpointError, InputError

REAL, STILL, REGRESSION = "real", "still head (lip sync only)", "regression"
NO_GUIDANCE, GUIDANCE, DDIM10 = "diffusion, no guidance", "diffusion, guidance", "diffusion, 10 steps (DDIM)"
AUDIO_ONLY = "diffusion, audio guidance only"
AS_SAMPLED = "diffusion, guidance, pose as sampled"
MEL, NO_TRANSFER, CONTROL = "mel features", "no transfer consistency", "transfer consistency (control)"
COLUMNS = (("Sc", "Sc ↑"), ("Sd", "Sd ↓"), ("capp", "CAPP ↑"), ("delta_p", "ΔP"), ("fvd_lite", "FVD-lite ↓"),
           ("identity", "identity ↑"))
NO_GUIDANCE_SCALES = {"audio": 0.0, "gaze": 0.0, "distance": 0.0, "emotion": 0.0}
ABLATION_CHECKPOINTS = {MEL: ("motion_mel",), CONTROL: ("latent_control", "motion_control"),
                        NO_TRANSFER: ("latent_notransfer", "motion_notransfer")}


def bootstrap(values, idx: np.ndarray) -> "dict | None":
    """Mean and 95% interval of per-clip values (NaN where a clip has none) over resampled clip indices idx [R, n];
    None when no clip has a value."""
    v = np.asarray(values, np.float64)
    if not np.isfinite(v).any():
        return None
    with np.errstate(all="ignore"):
        means = np.nanmean(v[idx], 1)
    means = means[np.isfinite(means)]
    return {"mean": round(float(np.nanmean(v)), 4), "lo": round(float(np.percentile(means, 2.5)), 4),
            "hi": round(float(np.percentile(means, 97.5)), 4)}


def _fvd_boot(feats: list, real: list, idx: np.ndarray) -> dict:
    """FVD-lite of the generated clips' features against the real clips', and its 95% interval over resamples."""
    from vasa_lite.instruments.fvd import frechet_distance

    def fd(sel):
        a = np.concatenate([feats[i] for i in sel])
        b = np.concatenate([real[i] for i in sel])
        return max(0.0, frechet_distance(a, b))

    full = fd(range(len(feats)))
    vals = [fd(s) for s in idx]
    return {"mean": round(full, 4), "lo": round(float(np.percentile(vals, 2.5)), 4),
            "hi": round(float(np.percentile(vals, 97.5)), 4)}


def _load_ablations(p, dev, notes: list) -> dict:
    """The ablation models that exist: {row: (latent or None, motion)}; a note for each that does not."""
    from vasa_lite.checkpoints import checkpoint_path
    from vasa_lite.latent.model import load_latent
    from vasa_lite.motion.train import load_motion

    out = {}
    for row, names in ABLATION_CHECKPOINTS.items():
        paths = [checkpoint_path(n, p.name) for n in names]
        missing = [str(x) for x in paths if not x.exists()]
        if missing:
            how = ("vasa-lite train motion --features mel" if row == MEL else "vasa-lite train ablations")
            notes.append(f"row '{row}' left out: {', '.join(missing)} not found; train it with `{how} --preset {p.name}`")
            continue
        try:
            if row == MEL:
                out[row] = (None, load_motion(p, path=paths[0], device=dev))
            else:
                with torch.no_grad():
                    lat = load_latent(p, path=paths[0], device=dev)
                out[row] = (lat, load_motion(p, path=paths[1], device=dev, latent=paths[0]))
        except CheckpointError as exc:
            notes.append(f"row '{row}' left out: {exc}")
    return out


@torch.no_grad()
def eval_all(preset="cpu", seed: int = 0, device=None, checkpoint=None, limit: "int | None" = None,
             splits=("test", "val"), resamples: int = 1000, fvd_resamples: int = 200, out_json=None,
             progress: bool = False, test_clips: "int | None" = None) -> dict:
    """`vasa-lite eval all`: the table (see the module doc) on the held-out clips of `splits` (the first `limit`);
    a dict with "rows" ({row: {column: {mean, lo, hi}}}), "directions", "clips", "notes" and "markdown".
    checkpoint: the diffusion generator (default the preset's). test_clips: use that many test clips and no other
    split; when the preset's test split is smaller, the next actors of the test seed range join it (held out like
    the rest: no model, instrument or probe sees them)."""
    from tqdm.auto import tqdm

    from vasa_lite.audio import load_audio_encoder
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device
    from vasa_lite.instruments.banks import bank_clip_frames, clip_bank
    from vasa_lite.instruments.fvd import fvd_features, load_fvd
    from vasa_lite.latent.model import load_latent
    from vasa_lite.metrics import FVD_HOP, evaluate
    from vasa_lite.motion.animate import render_generated
    from vasa_lite.motion.data import mel_features
    from vasa_lite.motion.generate import filter_pose, generate_motion
    from vasa_lite.motion.train import load_motion
    from vasa_lite.training import load_split

    t0 = time.perf_counter()
    p = get_preset(preset)
    dev = pick_device(device)
    notes: list[str] = []
    latent, encoder, fnet = load_latent(p, device=dev), load_audio_encoder(p, device=dev), load_fvd(p, device=dev)
    model = load_motion(p, checkpoint, dev)
    base = load_motion(p, None, dev, baseline=True)
    ablations = _load_ablations(p, dev, notes)

    actors = None
    if test_clips is not None:
        if isinstance(test_clips, bool) or not isinstance(test_clips, (int, np.integer)) or test_clips < 2:
            raise InputError(f"test_clips must be a whole number of at least 2, got {test_clips!r}")
        splits = ("test",)
        actors = max(p.world.n_test_actors, -(-int(test_clips) // p.world.clips_per_actor))
        limit = min(limit, test_clips) if limit else test_clips
    work = []                                       # (split, clip index in split, clip)
    for split in splits:
        for i, c in enumerate(load_split(p, split, actors=actors)):
            work.append((split, i, c))
    work = work[:limit] if limit else work
    if len(work) < 2:
        raise InputError(f"eval all needs at least 2 held-out clips, got {len(work)}; build the world: "
                         f"vasa-lite world build --preset {p.name}")
    banks = {s: clip_bank(p, s, progress=progress, actors=actors) for s in {w[0] for w in work}}
    rows = [REAL, STILL, REGRESSION, NO_GUIDANCE, AUDIO_ONLY, GUIDANCE, AS_SAMPLED, DDIM10] + list(ablations)
    per = {r: {k: [] for k, _ in COLUMNS if k != "fvd_lite"} for r in rows}
    feats = {r: [] for r in rows}
    mean_pose = model.motion_mean[:6].cpu()

    for split, i, clip in tqdm(work, desc="eval all", disable=not progress, unit="clip"):
        real = bank_clip_frames(banks[split], i)
        audio = clip["audio"]
        enc = encoder.encode_array(audio)
        src = latent.encode_source(real[:1].to(dev))

        def gen(m, f=enc, **kw):
            return generate_motion(f, model=m, seed=seed, device=dev, **kw)

        def show(motion, m=model, lat=latent, source=src):    # as animate renders it, from the generator m's mean pose
            return render_generated(lat, source, m, motion)[1]

        sampled = gen(model, pose_smooth=0)            # the guided motion, once: its filtered row is filter_pose of it
        reg = gen(base)
        still = reg.clone()
        still[:, :6] = mean_pose                        # relative to the portrait: the portrait's own pose, held
        videos = {REAL: real, STILL: show(still), REGRESSION: show(reg, base),
                  NO_GUIDANCE: show(gen(model, guidance=NO_GUIDANCE_SCALES)),
                  AUDIO_ONLY: show(gen(model, guidance={**NO_GUIDANCE_SCALES, "audio": model.cfg.guidance_audio})),
                  GUIDANCE: show(filter_pose(sampled, model.cfg.pose_smooth)), AS_SAMPLED: show(sampled),
                  DDIM10: show(gen(model, sampler="ddim", steps=10))}
        if MEL in ablations:
            m = ablations[MEL][1]
            norm = m.meta["extra"]["audio_norm"]
            videos[MEL] = show(gen(m, f=torch.from_numpy(mel_features(audio, norm))), m)
        for row in (CONTROL, NO_TRANSFER):
            if row in ablations:
                lat, m = ablations[row]
                videos[row] = show(gen(m), m, lat, lat.encode_source(real[:1].to(dev)))
        for r, video in videos.items():
            e = evaluate(video, audio, reference=real[:1], preset=p, device=dev)
            for k in per[r]:
                per[r][k].append(e["identity_similarity"] if k == "identity" else e[k])
            try:
                feats[r].append(fvd_features(video, fnet, hop=FVD_HOP))
            except InputError:
                feats[r].append(None)                   # shorter than one FVD window

    n = len(work)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    ok = [j for j in range(n) if feats[REAL][j] is not None]
    fidx = rng.integers(0, len(ok), size=(fvd_resamples, len(ok))) if ok else None
    table, paired = {}, {}
    for r in rows:
        table[r] = {}
        for k in per[r]:
            paired[(r, k)] = np.array([np.nan if x is None else float(x) for x in per[r][k]])
            table[r][k] = bootstrap(paired[(r, k)], idx)
        if len(ok) >= 2 and all(feats[r][j] is not None for j in ok):
            table[r]["fvd_lite"] = _fvd_boot([feats[r][j] for j in ok], [feats[REAL][j] for j in ok], fidx)
        else:
            table[r]["fvd_lite"] = None
    if len(ok) < 2:
        notes.append("FVD-lite left out: fewer than 2 clips as long as one FVD window")

    def diff(a, b, k):
        return bootstrap(paired[(a, k)] - paired[(b, k)], idx)

    directions = {
        "guidance raises Sc over no guidance": {"difference": diff(GUIDANCE, NO_GUIDANCE, "Sc")},
        "audio guidance alone raises Sc over no guidance": {"difference": diff(AUDIO_ONLY, NO_GUIDANCE, "Sc")},
        **({"transfer consistency raises Sc over its ablation": {"difference": diff(CONTROL, NO_TRANSFER, "Sc")}}
           if CONTROL in ablations and NO_TRANSFER in ablations else {}),
        "diffusion has more head motion (ΔP) than regression": {"difference": diff(GUIDANCE, REGRESSION, "delta_p")},
        "the pose filter raises Sc over the pose as sampled": {"difference": diff(GUIDANCE, AS_SAMPLED, "Sc")},
        "still head has ΔP near 0": {"value": table[STILL]["delta_p"]},
    }
    for key, d in directions.items():
        v = d.get("difference") or d.get("value")
        if v is None:
            d["holds"] = None
        elif key.startswith("still"):
            d["holds"] = bool(v["hi"] < 0.25 * table[REAL]["delta_p"]["mean"])
        else:
            d["holds"] = bool(v["lo"] > 0)                   # the whole interval above 0
    if CONTROL in ablations and NO_TRANSFER in ablations:
        directions["transfer consistency keeps head pose out of z_dyn"] = _pose_leak(p, ablations, seed, progress)
    fg, fr = table[GUIDANCE]["fvd_lite"], table[REGRESSION]["fvd_lite"]
    directions["diffusion has lower FVD-lite than regression"] = {
        "guidance": fg, "regression": fr, "holds": None if not (fg and fr) else bool(fg["hi"] < fr["lo"])}
    report = {"component": "all", "preset": p.name, "seed": int(seed), "splits": list(splits), "clips": n,
              "test_actors": len({int(c["meta"]["actor_seed"]) for s, _, c in work if s == "test"}),
              "clip_ids": [f"{s}/{i}" for s, i, _ in work], "resamples": resamples, "fvd_resamples": fvd_resamples,
              "rows": table, "directions": directions, "notes": notes}
    report["markdown"] = markdown_table(report)
    report["eval_seconds"] = round(time.perf_counter() - t0, 1)
    if out_json:
        from vasa_lite.metrics import write_report

        write_report(report, out_json)
    return report


def _pose_leak(p, ablations: dict, seed: int, progress: bool) -> dict:
    """What the transfer loss is for: how much of the true head angles a held-out linear probe reads from z_dyn
    (R², lower is better disentangled), for the control's latent and the no-transfer one (latent.evaluate.probes)."""
    from vasa_lite.latent.evaluate import probes
    from vasa_lite.latent.train import latent_bank

    train, test = latent_bank(p, "train", progress=progress), latent_bank(p, "test", progress=progress)
    out = {}
    for row, key in ((CONTROL, "control"), (NO_TRANSFER, "no transfer")):
        r = probes(ablations[row][0], train, test, seed=seed)
        out[key] = {"head_angles_r2_from_z_dyn": r["z_dyn"]["head_angles"],
                    "head_angles_r2_from_z_pose": r["z_pose"]["head_angles"],
                    "identity_accuracy_from_motion_codes": r["identity_accuracy"]["from_motion_codes"]}
    out["holds"] = bool(out["control"]["head_angles_r2_from_z_dyn"] < out["no transfer"]["head_angles_r2_from_z_dyn"])
    return out


def markdown_table(report: dict) -> str:
    """The table: a row per method, each cell 'mean [95% interval]'."""
    lines = ["| method | " + " | ".join(h for _, h in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, row in report["rows"].items():
        cells = []
        for k, _ in COLUMNS:
            v = row.get(k)
            cells.append("–" if v is None else f"{v['mean']:.3g} [{v['lo']:.3g}, {v['hi']:.3g}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    actors = f", {report['test_actors']} test actors" if report.get("test_actors") else ""
    lines.append(f"{report['clips']} held-out clips ({', '.join(report['splits'])}{actors}), 95% bootstrap intervals "
                 f"over {report['resamples']} resamples ({report['fvd_resamples']} for FVD-lite).")
    leak = report.get("directions", {}).get("transfer consistency keeps head pose out of z_dyn")
    if leak:
        c, n = leak["control"], leak["no transfer"]
        lines.append(f"Head angles read from z_dyn by a held-out linear probe (R², lower is better disentangled): "
                     f"{c['head_angles_r2_from_z_dyn']:.3g} with transfer consistency (control), "
                     f"{n['head_angles_r2_from_z_dyn']:.3g} without.")
    return "\n".join(lines)


@torch.no_grad()
def sweep(preset="cpu", seed: int = 0, device=None, limit: int = 4, scales=(0.0, 0.5, 1.0, 2.0),
          steps=(("ddim", 5), ("ddim", 10), ("ddim", 25), ("ddpm", 50)), split: str = "test") -> dict:
    """Sc, Sd, CAPP and ΔP (means over the first `limit` clips of `split`; CAPP None when every clip is shorter
    than its 3-second window) against the audio guidance scale
    (50 DDPM steps, gaze 1.0) and against the sampler and its steps (default guidance): notebook 07's plots."""
    from vasa_lite.audio import load_audio_encoder
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device
    from vasa_lite.instruments.banks import bank_clip_frames, clip_bank
    from vasa_lite.latent.model import load_latent
    from vasa_lite.metrics import evaluate
    from vasa_lite.motion.animate import render_generated
    from vasa_lite.motion.generate import generate_motion
    from vasa_lite.motion.train import load_motion
    from vasa_lite.training import load_split

    p = get_preset(preset)
    dev = pick_device(device)
    latent, encoder, model = load_latent(p, device=dev), load_audio_encoder(p, device=dev), load_motion(p, None, dev)
    bank = clip_bank(p, split, progress=False)
    keys = ("Sc", "Sd", "capp", "delta_p")
    settings = [("audio", lam, {"guidance": {"audio": lam, "gaze": 1.0}}) for lam in scales] + \
               [("steps", f"{smp} {n}", {"sampler": smp, "steps": n}) for smp, n in steps]
    acc = {(kind, x): {k: [] for k in keys} for kind, x, _ in settings}
    for i, clip in enumerate(load_split(p, split, limit=limit)):
        src = latent.encode_source(bank_clip_frames(bank, i)[:1].to(dev))
        feats = encoder.encode_array(clip["audio"])
        for kind, x, kw in settings:
            m = generate_motion(feats, model=model, seed=seed, device=dev, **kw)
            video = render_generated(latent, src, model, m)[1]
            e = evaluate(video, clip["audio"], preset=p, device=dev)
            for k in keys:
                if e[k] is not None:
                    acc[(kind, x)][k].append(float(e[k]))
    out = {"audio_guidance": {}, "steps": {}, "clips": limit, "split": split}
    for (kind, x), d in acc.items():
        out["audio_guidance" if kind == "audio" else "steps"][x] = {k: round(float(np.mean(v)), 4) if v else None
                                                                   for k, v in d.items()}
    return out


@torch.no_grad()
def fvd_smoothing(preset="cpu", seed: int = 0, device=None, limit: int = 12, sigmas=(0.0, 1.0, 2.0, 4.0),
                  split: str = "test") -> dict:
    """Why FVD-lite prefers the regression baseline: is it the diffusion motion's frame-to-frame jitter? FVD-lite
    (against the real clips), ΔP and head jerk (mean |second difference| of the estimated head angles, deg/frame²) of
    the diffusion motion (default guidance) low-pass filtered over time by a Gaussian of each sigma (frames, 0: as
    sampled), beside the regression baseline and the real clips, on the first `limit` clips of `split`. If smoothing
    alone closes most of the gap, FVD-lite is scoring jitter (its network learned to spot jittered clips), not realism
    in general."""
    from vasa_lite.audio import load_audio_encoder
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device
    from vasa_lite.instruments.attributes import POSE_ANGLES, smooth_pose
    from vasa_lite.instruments.banks import bank_clip_frames, clip_bank
    from vasa_lite.instruments.fvd import fvd_features, frechet_distance, load_fvd
    from vasa_lite.latent.model import load_latent
    from vasa_lite.metrics import FVD_HOP, evaluate
    from vasa_lite.motion.animate import render_generated
    from vasa_lite.motion.generate import generate_motion
    from vasa_lite.motion.train import load_motion
    from vasa_lite.training import load_split

    p = get_preset(preset)
    dev = pick_device(device)
    latent, encoder, fnet = load_latent(p, device=dev), load_audio_encoder(p, device=dev), load_fvd(p, device=dev)
    model, base = load_motion(p, None, dev), load_motion(p, None, dev, baseline=True)
    bank = clip_bank(p, split, progress=False)
    rows = [REAL, REGRESSION] + [f"diffusion, smoothed σ={s:g}" for s in sigmas]
    feats = {r: [] for r in rows}
    acc = {r: {"delta_p": [], "jerk": []} for r in rows}
    clips = load_split(p, split, limit=limit)
    for i, clip in enumerate(clips):
        real = bank_clip_frames(bank, i)
        src = latent.encode_source(real[:1].to(dev))
        enc = encoder.encode_array(clip["audio"])
        # both as sampled (pose_smooth=0). This study smooths the whole motion; the generators' filter
        # (filter_pose) took its pose part only, so its sigma = 1 row is not what they output
        diff = generate_motion(enc, model=model, seed=seed, device=dev, pose_smooth=0)
        videos = {REAL: real, REGRESSION: render_generated(latent, src, base, generate_motion(
            enc, model=base, seed=seed, device=dev, pose_smooth=0))[1]}
        for s, r in zip(sigmas, rows[2:]):
            smooth = torch.from_numpy(smooth_pose(diff.cpu().numpy(), s)).float()
            videos[r] = render_generated(latent, src, model, smooth)[1]
        for r, video in videos.items():
            e = evaluate(video, preset=p, device=dev)
            pose = np.stack([e["tracks"][n] for n in POSE_ANGLES], 1)
            acc[r]["delta_p"].append(e["delta_p"])
            acc[r]["jerk"].append(float(np.abs(np.diff(pose, 2, axis=0)).mean()))
            feats[r].append(fvd_features(video, fnet, hop=FVD_HOP))
    out = {"preset": p.name, "clips": len(clips), "split": split, "rows": {}}
    real_feats = np.concatenate(feats[REAL])
    for r in rows:
        out["rows"][r] = {"fvd_lite": round(max(0.0, frechet_distance(np.concatenate(feats[r]), real_feats)), 4),
                          **{k: round(float(np.mean(v)), 4) for k, v in acc[r].items()}}
    return out


def paper_table() -> dict:
    """VASA-1's own tables (data/paper_table.json), with their source."""
    from vasa_lite.paths import DATA_DIR

    return json.loads((Path(DATA_DIR) / "paper_table.json").read_text())


__all__ = ["eval_all", "markdown_table", "bootstrap", "paper_table", "sweep", "fvd_smoothing", "COLUMNS"]
