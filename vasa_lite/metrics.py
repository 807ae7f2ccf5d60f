"""One entry point for every number the paper reports about a generated talking-face video.

    from vasa_lite.metrics import evaluate
    m = evaluate(frames, audio)                    # frames [T, 3, H, W] in [0, 1] at 25 fps, audio 16 kHz samples
    m["Sc"], m["Sd"], m["delta_p"], m["emotion"]
    m = evaluate(frames, audio, reference=portrait_frames)   # adds identity similarity (and FVD-lite when long)

Every metric comes from an instrument trained apart from the generator (see vasa_lite.instruments): SyncNet-lite
(Sc, Sd, offset), the attribute estimator (ΔP, pose, gaze, distance, emotion, mouth opening), CAPP-lite (the
audio-pose score, from the *estimated* pose, as the paper re-estimates pose from its frames), the identity network
(similarity to the reference) and FVD-lite (against reference clips; NOT comparable to published FVD). They are
loaded lazily from data/checkpoints the first time they are needed, then kept in memory.

`vasa-lite eval instruments --preset P` measures the instruments themselves on test clips and test actors (every
target figure as JSON); `vasa-lite train instruments --preset P` trains all four.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from vasa_lite.errors import CheckpointError, InputError

MIN_FVD_CLIPS = 10          # FVD-lite needs this many 25-frame clips (hop 5) on each side to be worth reporting
FVD_HOP = 5
KEYS = ("Sc", "Sd", "offset", "sync_curve", "delta_p", "delta_p_raw", "pose_mean", "pose_std", "gaze_mean", "distance_mean",
        "emotion", "emotion_probs", "mouth_open", "capp", "identity_similarity", "fvd_lite", "tracks", "frames",
        "seconds", "notes")


def _stats(x: np.ndarray) -> dict:
    return {"mean": round(float(np.mean(x)), 4), "std": round(float(np.std(x)), 4), "min": round(float(np.min(x)), 4),
            "max": round(float(np.max(x)), 4)}


def evaluate(video, audio=None, reference=None, preset="cpu", sr: "int | None" = None, device=None) -> dict:
    """Every metric of a generated video, as a dict with all of `KEYS` (None where a metric cannot be computed, and
    a line in "notes" saying why).

    video: frames [T, 3, H, W] (or [T, H, W, 3]), float in [0, 1] or uint8, 25 fps. audio: 16 kHz samples (or `sr`)
    or a path, the same length as the video within 2 frames; None skips Sc/Sd and CAPP. reference: frames of the
    real person (a portrait [1, 3, H, W] or a video) for identity similarity, and for FVD-lite when both have at
    least MIN_FVD_CLIPS 25-frame clips.

    Returns: Sc, Sd, offset (frames; + means audio lags), sync_curve; delta_p (deg/frame, from the pose track
    smoothed over 1.5 frames, see attributes.delta_p) and delta_p_raw (unsmoothed), pose_mean and pose_std
    ({yaw, pitch, roll} deg), gaze_mean ({gaze_yaw, gaze_pitch} deg), distance_mean, emotion and emotion_probs
    (clip level), mouth_open (jaw-opening stats in [0, 1]), capp, identity_similarity, fvd_lite, tracks (per-frame
    estimates as arrays), frames, seconds, notes.
    """
    from vasa_lite.instruments.attributes import (GAZE, POSE_ANGLES, clip_emotion, delta_p_of, estimate, load_attributes,
                                                  smooth_pose)
    from vasa_lite.instruments.banks import as_frames

    t0 = time.perf_counter()
    x = as_frames(video, "video", min_frames=2)
    ref = as_frames(reference, "reference") if reference is not None else None
    out = {k: None for k in KEYS}
    notes = []
    att = load_attributes(preset, device=device)
    est = estimate(x, att)
    raw = np.stack([est[n] for n in POSE_ANGLES], 1)
    pose = smooth_pose(raw)                       # per-frame estimation noise removed, see attributes.delta_p
    out["delta_p"] = round(delta_p_of(pose), 4)
    out["delta_p_raw"] = round(delta_p_of(raw), 4)
    out["pose_mean"] = {n: round(float(pose[:, i].mean()), 3) for i, n in enumerate(POSE_ANGLES)}
    out["pose_std"] = {n: round(float(pose[:, i].std()), 3) for i, n in enumerate(POSE_ANGLES)}
    out["gaze_mean"] = {n: round(float(est[n].mean()), 3) for n in GAZE}
    out["distance_mean"] = round(float(est["distance"].mean()), 4)
    emo = clip_emotion(logits=est["emotion_logits"])
    out["emotion"], out["emotion_probs"] = emo["emotion"], emo["probs"]
    out["mouth_open"] = _stats(est["jaw"])
    out["tracks"] = {n: est[n] for n in POSE_ANGLES + GAZE + ("distance", "jaw")} | {"face_track": est["track"]}
    out["frames"] = len(x)

    if audio is not None:
        from vasa_lite.instruments.syncnet import load_syncnet, smooth_track, sync_scores

        sync = load_syncnet(preset, device=device)
        if len(x) < sync.frames:
            notes.append(f"Sc/Sd need at least {sync.frames} frames")
        else:
            s = sync_scores(x, audio, sync, track=smooth_track(est["track"]), sr=sr)
            out.update(Sc=round(s["Sc"], 4), Sd=round(s["Sd"], 4), offset=s["offset"], sync_curve=s["curve"])
        out["capp"] = _capp(audio, pose, preset, sr, notes)
    else:
        notes.append("no audio: Sc, Sd, offset and CAPP skipped")

    if ref is not None:
        from vasa_lite.instruments.identity import identity_similarity, load_identity

        out["identity_similarity"] = round(identity_similarity(x, ref, load_identity(preset, device=device)), 4)
        from vasa_lite.instruments.fvd import fvd, load_fvd

        fnet = load_fvd(preset, device=device)
        n_clips = [max(0, (len(v) - fnet.cfg.frames) // FVD_HOP + 1) for v in (x, ref)]
        if min(n_clips) >= MIN_FVD_CLIPS:
            out["fvd_lite"] = round(fvd(x, ref, fnet, hop=FVD_HOP), 3)
        else:
            notes.append(f"FVD-lite skipped: it needs {MIN_FVD_CLIPS} clips of {fnet.cfg.frames} frames (hop "
                         f"{FVD_HOP}) on each side, got {n_clips[0]} and {n_clips[1]}")
    else:
        notes.append("no reference: identity similarity and FVD-lite skipped")
    out["notes"] = notes
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def write_report(report: dict, out_json) -> Path:
    """An evaluation report as JSON, and its "markdown" table beside it (.md)."""
    import json

    path = Path(out_json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    path.with_suffix(".md").write_text(report["markdown"] + "\n")
    return path


def _capp(audio, pose: np.ndarray, preset, sr, notes: list):
    """CAPP score of the audio and the *estimated* head pose, when CAPP-lite and its checkpoint are there."""
    try:
        from vasa_lite.instruments import capp as capp_module
    except ImportError:
        notes.append("CAPP skipped: vasa_lite.instruments.capp is not available")
        return None
    if not hasattr(capp_module, "capp_score"):
        notes.append("CAPP skipped: vasa_lite.instruments.capp has no capp_score")
        return None
    try:
        return round(float(capp_module.capp_score(audio, pose, preset=preset, sr=sr)), 4)
    except CheckpointError as exc:
        notes.append(f"CAPP skipped: {exc}")
    except InputError as exc:
        notes.append(f"CAPP skipped: {exc}")
    return None


# ------------------------------------------------------------------------------------------ train / eval all

_ORDER = ("attributes", "identity", "fvd", "syncnet")   # SyncNet's evaluation tracks faces with the attribute net


def _component(name: str):
    import importlib

    module = importlib.import_module(f"vasa_lite.instruments.{name}")
    return getattr(module, f"train_{name}"), getattr(module, f"eval_{name}")


def train_instruments(preset="cpu", seed: int = 0, device=None, steps: "int | None" = None, resume: bool = True,
                      out=None, progress: bool = True) -> dict:
    """`vasa-lite train instruments`: train the four instruments one after the other (out: a folder, optional)."""
    from pathlib import Path

    summaries = {}
    for name in _ORDER:
        train, _ = _component(name)
        path = Path(out) / f"{name}.pt" if out else None
        summaries[name] = train(preset=preset, seed=seed, device=device, steps=steps, resume=resume, out=path,
                                progress=progress)
    return summaries


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, (bool, int, float, np.floating, np.integer)) and not isinstance(v, str):
            out[f"{prefix}{k}"] = float(v)
    return out


def record_metrics(component: str, preset, report: dict) -> None:
    """Store an evaluation report's numbers in the metadata of a component's shipped checkpoint (as "test.*"
    metrics), so the file carries the figures it was measured at; weights and the rest of the metadata stay."""
    from vasa_lite.checkpoints import checkpoint_path, load_checkpoint, save_checkpoint
    from vasa_lite.config import get_preset

    p = get_preset(preset)
    path = checkpoint_path(component, p.name)
    state, meta = load_checkpoint(path, component=component)
    metrics = {k: v for k, v in meta["metrics"].items() if not k.startswith("test.")}
    skip = {"trained_steps", "train_seconds"}
    metrics.update({f"test.{k}": v for k, v in _flat(report).items() if k not in skip})
    extra = dict(meta.get("extra") or {})
    extra["test_measured"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save_checkpoint(path, state, component=component, preset=p, steps=meta["steps"], metrics=metrics, extra=extra)


def eval_instruments(preset="cpu", seed: int = 0, device=None, checkpoint=None, limit: "int | None" = None,
                     record: bool = False) -> dict:
    """`vasa-lite eval instruments`: every target figure of the instruments, measured on test clips and actors.

    record: also store each component's figures in its checkpoint's metadata (see record_metrics)."""
    if checkpoint is not None:
        raise InputError("eval instruments uses the four shipped checkpoints; to evaluate one file, use "
                         "`vasa-lite eval syncnet|attributes|fvd|identity --checkpoint PATH`")
    t0 = time.perf_counter()
    reports = {name: _component(name)[1](preset=preset, seed=seed, device=device, limit=limit) for name in _ORDER}
    a, s = reports["attributes"], reports["syncnet"]
    f, i = reports["fvd"], reports["identity"]
    rr = a["random_renders"]
    targets = {
        "syncnet_offset_within_1_frame": {"value": s["offset_within_1_frame"], "target": ">= 0.90",
                                          "met": s["offset_within_1_frame"] >= 0.9},
        "syncnet_sc_auc_sync_vs_mismatched": {"value": s["sc_auc_sync_vs_mismatched"], "target": ">= 0.95",
                                              "met": s["sc_auc_sync_vs_mismatched"] >= 0.95},
        "yaw_mae_deg": {"value": rr["yaw_mae"], "target": "<= 2", "met": rr["yaw_mae"] <= 2},
        "pitch_mae_deg": {"value": rr["pitch_mae"], "target": "<= 2", "met": rr["pitch_mae"] <= 2},
        "roll_mae_deg": {"value": rr["roll_mae"], "target": "<= 2", "met": rr["roll_mae"] <= 2},
        "gaze_mae_deg": {"value": rr["gaze_mae"], "target": "<= 3", "met": rr["gaze_mae"] <= 3},
        "emotion_acc_per_clip": {"value": a["test_clips"]["emotion_clip_acc"], "target": ">= 0.90",
                                 "met": a["test_clips"]["emotion_clip_acc"] >= 0.9},
        "emotion_acc_per_frame": {"value": a["test_clips"]["emotion_frame_acc"], "target": "(reported)",
                                  "met": None},
        "fvd_real_below_every_corruption": {"value": f["fvd_real_vs_real"], "target": "< each corrupted",
                                            "met": f["every_corruption_larger"]},
        "identity_verification_auc": {"value": i["test_verification"]["auc"], "target": "(reported)", "met": None},
    }
    if record:
        for name in _ORDER:
            record_metrics(name, preset, reports[name])
    return {"preset": reports["attributes"]["preset"], "targets": targets, "reports": reports,
            "eval_seconds": round(time.perf_counter() - t0, 1)}


def bench_instruments(preset="cpu", seed: int = 0, device=None, frames: "int | None" = None) -> dict:
    """`vasa-lite bench instruments`: speed of each shipped instrument and of `evaluate` on a rendered clip."""
    import torch

    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device
    from vasa_lite.instruments.attributes import load_attributes
    from vasa_lite.instruments.fvd import fvd_features, load_fvd
    from vasa_lite.instruments.identity import load_identity
    from vasa_lite.instruments.syncnet import load_syncnet, sync_scores
    from vasa_lite.world.actor import DEFAULT_ACTOR_SEED, sample_actor
    from vasa_lite.world.render import Renderer, clip_tracks

    p = get_preset(preset)
    n = int(frames or 250)
    x = Renderer(p.world.size).render(sample_actor(DEFAULT_ACTOR_SEED), clip_tracks(n, seed=seed))
    audio = (0.1 * np.random.default_rng(seed).standard_normal(n * 640)).astype(np.float32)
    dev = pick_device(device)
    out = {"target": "instruments", "preset": p.name, "frames": n, "size": p.world.size, "device": str(dev),
           "threads": torch.get_num_threads()}

    def timed(fn):
        fn()                                   # warm-up (and lazy loading)
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    att, sync = load_attributes(p, device=dev), load_syncnet(p, device=dev)
    fnet, ident = load_fvd(p, device=dev), load_identity(p, device=dev)
    track = att.predict(x)["track"]
    sec = {"attributes": timed(lambda: att.predict(x)),
           "syncnet (given the face track)": timed(lambda: sync_scores(x, audio, sync, track=track)),
           "fvd_features (hop 5)": timed(lambda: fvd_features(x, fnet, hop=5)),
           "identity": timed(lambda: ident.embed(x))}
    sec["evaluate (all, with reference)"] = timed(lambda: evaluate(x, audio, reference=x, preset=p, device=dev))
    out["seconds"] = {k: round(v, 3) for k, v in sec.items()}
    out["frames_per_s"] = {k: round(n / v, 1) for k, v in sec.items()}
    out["x_real_time_evaluate"] = round(n / 25 / sec["evaluate (all, with reference)"], 2)
    return out


__all__ = ["evaluate", "write_report", "train_instruments", "eval_instruments", "bench_instruments", "record_metrics", "KEYS",
           "MIN_FVD_CLIPS"]
