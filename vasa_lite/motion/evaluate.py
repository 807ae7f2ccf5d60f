"""Measuring the motion generator: `vasa-lite eval motion` (JSON and a markdown table) and `vasa-lite bench motion`.

On the world's *test* clips (actors and sentences never seen in training), each row's motion is rendered by the
face latent model from the clip's first frame (the "portrait"), exactly as `animate` renders it, and measured with
the course's instruments, which were trained apart from the generator (`metrics.evaluate`):

- Sc, Sd: SyncNet-lite's lip-sync confidence (higher is better) and distance (lower is better);
- mouth r: the correlation of the mouth opening the attribute estimator reads (jaw) with the world's TRUE jaw
  track of the same audio: sync measured against ground truth, which only a world can give;
- latent mouth r: the same correlation for the jaw that the latent model's expression read-out gives from the
  motion's z_dyn, before any rendering: what the motion asks for, apart from what the decoder shows;
- CAPP: the audio-pose score of the re-estimated head pose; ΔP: its liveliness (deg/frame);
- FVD-lite against the real test clips (so the "real" row is 0 by definition; NOT comparable to published FVD);
- identity: the identity network's similarity of the frames to the first frame.

Rows: "real" (the true clips, rendered by the world), "real motion, latent decoder" (the true motion encoded and
decoded from the first frame: the decoder's ceiling), "regression" (the baseline), "diffusion, no guidance",
"diffusion, default guidance" (audio 0.5, gaze 1.0: the paper's), "diffusion, pose as sampled" (the same without
the low-pass filter on z_pose that generate_motion applies, motion.generate.filter_pose) and "diffusion, 10 steps
(DDIM)". Generated rows use the default controls (forward gaze, mean distance, no emotion: what a user who gives none
gets).

For the generated rows, also:
- controls: the same clips generated with gaze (15, -10), distance 1.15 and an emotion (`CONTROLS`: clip k asks for
  the k-th of the five emotions, cycled, so every emotion is asked for), read back by the attribute estimator: gaze
  error (degrees, mean over yaw and pitch of the clip's main gaze, eyes open), distance error (%) and emotion
  accuracy (clip-level emotion), also per requested emotion; and the latent gaze error: the same main gaze read
  from the motion's z_dyn by the latent model's expression read-out, before any rendering (what the motion asks
  for; the rendered error adds what the decoder does not show). With relative pose (the default, see
  motion.animate) distance is relative to the portrait, so the expected distance is the row's own distance
  without the control times 1.15 / the training mean distance; with absolute pose that is about 1.15 itself;
- what the decoder can show of the controls (a row of its own, not generated): each clip's portrait driven by the
  real motion of the same actor's
  other clip (row "real motion of the actor's other clip"), read back the same way against that clip's true main
  gaze, mean distance and emotion. The portrait keeps its own appearance and the motion brings another gaze and
  emotion, as a control does; a generator that asked for exactly the real motion would score this;
- diversity: the mean std of the generated head angles (yaw, pitch, roll, degrees) across 3 seeds for one audio;
  the regression baseline, which has no noise, scores 0;
- seams: on one 60-second audio (SEAM_SECONDS, the issue's length) made of the test clips' speech, cycled and cut,
  the mean |third difference| of the normalised motion (jerk) where the difference spans a window boundary, inside
  windows, and their ratio: about 1 when the previous-window condition hides the seams (with the pose filter, which
  also smooths z_pose across the boundaries; the row "diffusion, pose as sampled" shows the seams without it). Both
  jerks are averaged over 3 seeds first: on 8 s of speech the cpu model's ratio ranged from 0.97 to 1.97 over four seeds, on 60 s
  from 0.95 to 1.14.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from vasa_lite.errors import CheckpointError, InputError
from vasa_lite.world.params import DYNAMICS_NAMES, EMOTIONS, FPS, FRAME_FACTOR_NAMES, SAMPLE_RATE

CONTROLS = {"gaze": (15.0, -10.0), "distance": 1.15, "emotion": EMOTIONS}    # a tuple of emotions: cycled over clips
SEAM_SECONDS = 60.0             # the long audio of the seam test (30 windows of 2 s)
SEAM_SEEDS = 3
DIVERSITY_SEEDS = 3
REAL, RECON = "real", "real motion, latent decoder"
OTHER = "real motion of the actor's other clip"          # the decoder's ceiling for the controls
# generated rows: keyword arguments of generate_motion (baseline: the regression model)
GENERATED = {
    "regression": {"baseline": True},
    "diffusion, no guidance": {"guidance": {"audio": 0.0, "gaze": 0.0, "distance": 0.0, "emotion": 0.0}},
    "diffusion, default guidance": {},
    "diffusion, pose as sampled": {"pose_smooth": 0.0},          # without the low-pass filter on z_pose
    "diffusion, 10 steps (DDIM)": {"sampler": "ddim", "steps": 10},
}
ROW_KEYS = ("guidance", "sampler", "steps", "pose_smooth")      # what a row of eval_motion(rows=...) may set
METRICS = ("Sc", "Sd", "mouth_r", "latent_mouth_r", "capp", "delta_p", "fvd_lite", "identity")


def _mean(values) -> "float | None":
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    return round(float(np.mean(v)), 4) if v else None


def correlation(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = min(len(a), len(b))
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def seam_jerk(motion, window: int) -> dict:
    """Mean |third difference| (jerk) of a motion [T, M] over the differences that span a window boundary
    (frames k W - 3 .. k W for k >= 1) and over the others, and their ratio."""
    x = np.asarray(motion, np.float64)
    jerk = np.abs(np.diff(x, n=3, axis=0)).mean(1)              # jerk[t] spans frames t .. t + 3
    t = np.arange(len(jerk))
    across = np.zeros(len(jerk), bool)
    for b in range(window, len(x), window):
        across |= (t < b) & (t + 3 >= b)
    if not across.any() or across.all():
        raise InputError(f"seam jerk needs more than one window of {window} frames and frames inside windows; "
                         f"got {len(x)} frames")
    at, inside = float(jerk[across].mean()), float(jerk[~across].mean())
    return {"jerk_boundary": round(at, 5), "jerk_inside": round(inside, 5), "ratio": round(at / max(inside, 1e-12), 3)}


def main_gaze(est: dict) -> np.ndarray:
    """The clip's main gaze (yaw, pitch): the mean over frames with open eyes (all frames if none)."""
    from vasa_lite.motion.data import BLINK_SHUT

    g = np.stack([est["gaze_yaw"], est["gaze_pitch"]], 1)
    open_ = est["blink"] < BLINK_SHUT
    return g[open_].mean(0) if open_.any() else g.mean(0)


def true_controls(bank: dict, i: int) -> dict:
    """The controls that clip i of a clip bank truly shows: its main gaze (as main_gaze, on the world's own gaze and
    blink tracks), its mean head distance and its emotion."""
    from vasa_lite.world.params import EMOTIONS

    off = bank["offsets"]
    tr = np.asarray(bank["tracks"][int(off[i]):int(off[i + 1])])
    col = {n: tr[:, FRAME_FACTOR_NAMES.index(n)] for n in ("gaze_yaw", "gaze_pitch", "blink", "distance")}
    return {"gaze": tuple(main_gaze(col)), "distance": float(col["distance"].mean()),
            "emotion": EMOTIONS[int(bank["emotion"][i])]}


def latent_factors(latent, z_dyn, names=("gaze_yaw", "gaze_pitch", "blink")) -> dict:
    """What the latent model's expression read-out gives per frame from z_dyn [T, dyn_dim] for each factor in
    `names`, in world units (gaze in degrees; the read-out gives fractions of each range, latent.train.
    expression_targets): what the motion asks for, before any rendering. The defaults are what main_gaze needs."""
    from vasa_lite.world.params import FACTORS

    dev = next(latent.parameters()).device
    z = torch.as_tensor(np.asarray(z_dyn), dtype=torch.float32, device=dev)
    e = latent.expression_head(z).detach().cpu().numpy()
    return {n: FACTORS[n].low + e[:, DYNAMICS_NAMES.index(n)] * (FACTORS[n].high - FACTORS[n].low) for n in names}


def _gaze_error(est: dict, ctrl: dict) -> float:
    """Degrees between a clip's main gaze (main_gaze of per-frame gaze_yaw, gaze_pitch, blink) and ctrl["gaze"],
    averaged over yaw and pitch."""
    return float(np.abs(main_gaze(est) - np.asarray(ctrl["gaze"])).mean())


def _control_errors(est: dict, ctrl: dict, distance: float) -> dict:
    """How far a video's estimated attributes are from the requested controls (expected distance `distance`)."""
    from vasa_lite.instruments.attributes import clip_emotion

    return {"gaze_error_deg": _gaze_error(est, ctrl),
            "distance_error_pct": 100 * abs(float(est["distance"].mean()) - distance) / distance,
            "emotion_acc": float(clip_emotion(logits=est["emotion_logits"])["emotion"] == ctrl["emotion"])}


def markdown_table(report: dict) -> str:
    """The report as one markdown table: a row per motion source, '–' where a figure does not apply."""
    cols = [("Sc ↑", "Sc"), ("Sd ↓", "Sd"), ("mouth r ↑", "mouth_r"), ("latent mouth r ↑", "latent_mouth_r"),
            ("CAPP ↑", "capp"), ("ΔP", "delta_p"),
            ("FVD-lite ↓", "fvd_lite"), ("identity ↑", "identity"), ("gaze err ° ↓", "gaze_error_deg"),
            ("latent gaze err ° ↓", "latent_gaze_error_deg"),
            ("dist err % ↓", "distance_error_pct"), ("emotion acc ↑", "emotion_acc"), ("diversity °", "diversity"),
            ("seam jerk ratio", "seam_ratio")]
    lines = ["| motion | " + " | ".join(c for c, _ in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    rows = {**report["rows"], **{n: {} for n in report["controls"]["rows"] if n not in report["rows"]}}
    for name, row in rows.items():
        extra = dict(report["controls"]["rows"].get(name, {}))
        extra["diversity"] = report["diversity"].get(name)
        extra["seam_ratio"] = (report["seams"]["rows"].get(name) or {}).get("ratio")
        cells = [{**row, **extra}.get(k) for _, k in cols]
        lines.append(f"| {name} | " + " | ".join("–" if v is None else f"{v:.3g}" for v in cells) + " |")
    return "\n".join(lines)


def check_rows(rows: "dict | None", cfg) -> dict:
    """eval_motion's extra rows, validated against MotionConfig cfg: {name: generate_motion keywords (ROW_KEYS)}.
    A name already in the table, an unknown keyword or a bad value is an InputError naming the row."""
    from vasa_lite.motion.generate import check_number, config_sampler
    from vasa_lite.motion.guidance import guidance_scales

    out = {}
    for name, kw in (rows or {}).items():
        if not isinstance(name, str) or name in GENERATED or name in (REAL, RECON, OTHER):
            raise InputError(f"row {name!r} is already in the table or not a name; give it another name")
        unknown = set(kw) - set(ROW_KEYS) if isinstance(kw, dict) else {"(not a dict)"}
        if unknown:
            raise InputError(f"row {name!r}: unknown keywords {sorted(unknown)}; a row takes a dict of: "
                             f"{', '.join(ROW_KEYS)}")
        try:
            guidance_scales(kw.get("guidance"), cfg)
            config_sampler(cfg, kw.get("sampler", "ddpm"), kw.get("steps"))
            if kw.get("pose_smooth") is not None:
                check_number("pose_smooth", kw["pose_smooth"], 0.0, 25.0, "frames")
        except InputError as exc:
            raise InputError(f"row {name!r}: {exc}") from None
        out[name] = dict(kw)
    return out


@torch.no_grad()
def eval_motion(preset="cpu", seed: int = 0, device=None, checkpoint=None, limit: "int | None" = None,
                baseline=None, pose: str = "relative", controls: "dict | None" = None, world_root=None,
                progress: bool = False, out_json=None, record: bool = False, rows: "dict | None" = None) -> dict:
    """Every figure of the motion generator on the test clips (see the module doc), as a dict with "rows",
    "controls", "diversity", "seams" and "markdown" (the table).

    checkpoint: the diffusion model (default the preset's motion_<preset>.pt); baseline: the regression model
    (default regression_<preset>.pt; its rows are left out, with a note, when it does not exist). limit: the first
    `limit` test clips. pose: "relative" or "absolute" (motion.animate). controls: the requested controls
    (those not given take CONTROLS' values). out_json: also write the report there, and the table beside it (.md). record: also store
    the figures in the checkpoint's metadata (metrics.record_metrics). rows: more generated rows, measured like the
    others, name -> keywords of generate_motion (ROW_KEYS), e.g. {"emotion guided": {"guidance": {"emotion": 2.0}}}
    (a guidance dict overrides the default scales, motion.guidance.guidance_scales)."""
    from tqdm.auto import tqdm

    from vasa_lite.audio import load_audio_encoder
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device
    from vasa_lite.instruments.attributes import estimate, load_attributes
    from vasa_lite.instruments.banks import bank_clip_frames, clip_bank
    from vasa_lite.instruments.fvd import fvd_features, frechet_distance, load_fvd
    from vasa_lite.latent.evaluate import codes_of
    from vasa_lite.latent.model import load_latent
    from vasa_lite.metrics import FVD_HOP, evaluate
    from vasa_lite.motion.animate import POSE_MODES, render_generated, render_motion
    from vasa_lite.motion.generate import check_controls, generate_motion
    from vasa_lite.motion.train import checkpoint_file, load_motion
    from vasa_lite.training import load_split

    t0 = time.perf_counter()
    p = get_preset(preset)
    dev = pick_device(device)
    asked = {**CONTROLS, **(controls or {})}
    e = asked["emotion"]
    emotions = (e,) if e is None or isinstance(e, str) else tuple(e)       # cycled over the clips
    ctrl = check_controls(gaze=asked["gaze"], distance=asked["distance"])
    ctrl.pop("intensity")                      # each emotion at full strength: what emotion accuracy asks for
    for emo in emotions:
        check_controls(emotion=emo)
    if None in (ctrl["gaze"], ctrl["distance"]) or not emotions or None in emotions:
        raise InputError(f"eval motion measures all three controls; give gaze, distance and emotion (a name or a "
                         f"list of names, cycled over the clips), got {asked}")
    if pose not in POSE_MODES:
        raise InputError(f"unknown pose mode {pose!r}; choose one of: {', '.join(POSE_MODES)}")
    extra = check_rows(rows, p.motion)              # before any model loads: a bad row costs nothing
    notes = []
    model = load_motion(p, checkpoint, dev)
    if model.regression:
        raise InputError("eval motion wants the diffusion model as --checkpoint; the regression baseline is "
                         "measured beside it (baseline=PATH)")
    rows_kw = {**GENERATED, **extra}
    try:
        base = load_motion(p, baseline, dev, baseline=True)
    except CheckpointError as exc:
        base = None
        rows_kw.pop("regression")
        notes.append(f"regression row skipped: {exc}")
    latent, att, encoder, fnet = (load_latent(p, device=dev), load_attributes(p, device=dev),
                                  load_audio_encoder(p, device=dev), load_fvd(p, device=dev))
    bank = clip_bank(p, "test", world_root=world_root, progress=progress)
    clips = load_split(p, "test", limit=limit, root=world_root)
    if not clips:
        raise InputError(f"the '{p.name}' world has no test clips; build it: vasa-lite world build --preset {p.name}")
    off = np.asarray(bank["offsets"])
    jaw_col = FRAME_FACTOR_NAMES.index("jaw")

    def generate(feats, kw, seed_, **c):
        kw = dict(kw)
        m = base if kw.pop("baseline", False) else model
        return generate_motion(feats, model=m, seed=seed_, **kw, **c)

    names = [REAL, RECON] + list(rows_kw)
    per = {n: {k: [] for k in METRICS} for n in names}
    feats_fvd = {n: [] for n in names}
    ctrl_per = {n: {"gaze_error_deg": [], "latent_gaze_error_deg": [], "distance_error_pct": [], "emotion_acc": []}
                for n in [OTHER, *rows_kw]}
    by_emotion: dict = {n: {} for n in rows_kw}             # emotion accuracy per requested emotion
    actor = np.asarray(bank["actor"])
    coded: dict = {}                        # motion codes per clip: a clip is also its partner's ceiling driver

    def clip_codes(i: int, frames=None) -> dict:
        if i not in coded:
            coded[i] = codes_of(latent, bank_clip_frames(bank, i) if frames is None else frames)
        return coded[i]

    first_feats = None
    for ci, clip in enumerate(tqdm(clips, desc="eval motion", disable=not progress, unit="clip")):
        a, b = int(off[ci]), int(off[ci + 1])
        real = bank_clip_frames(bank, ci)
        audio = clip["audio"]
        feats = encoder.encode_array(audio)
        first_feats = feats if first_feats is None else first_feats
        clip_ctrl = {**ctrl, "emotion": emotions[ci % len(emotions)]}     # this clip's requested controls
        source = latent.encode_source(real[:1].to(dev))
        codes = clip_codes(ci, real)
        videos = {REAL: real, RECON: render_motion(latent, source, torch.from_numpy(
            np.c_[codes["z_pose"], codes["z_dyn"]]))}          # the clip's own motion: its own absolute pose

        def drive(m, source=source):       # generated motion -> frames, as animate renders it
            return render_generated(latent, source, model, m, pose)[1]

        def latent_jaw(z_dyn):                               # the jaw the motion asks for, before rendering
            return latent_factors(latent, z_dyn, ("jaw",))["jaw"]

        others = [int(o) for o in np.flatnonzero(actor == actor[ci]) if o != ci]
        if others:                      # this portrait moved by the same actor's other clip: the controls' ceiling
            oc = clip_codes(others[0])
            est = estimate(render_motion(latent, source, torch.from_numpy(np.c_[oc["z_pose"], oc["z_dyn"]])), att)
            want = true_controls(bank, others[0])
            for key, value in _control_errors(est, want, want["distance"]).items():
                ctrl_per[OTHER][key].append(value)
            ctrl_per[OTHER]["latent_gaze_error_deg"].append(_gaze_error(latent_factors(latent, oc["z_dyn"]), want))

        truth_jaw = bank["tracks"][a:b, jaw_col]
        own = correlation(latent_jaw(codes["z_dyn"]), truth_jaw)            # the real clip's own motion, encoded
        asked = {REAL: own, RECON: own}
        for name, kw in rows_kw.items():
            motion = generate(feats, kw, seed)
            asked[name] = correlation(latent_jaw(motion[:, 6:].cpu()), truth_jaw)
            videos[name] = drive(motion)
        for name, video in videos.items():
            r = evaluate(video, audio, reference=real[:1], preset=p, device=dev)
            for key, value in (("Sc", r["Sc"]), ("Sd", r["Sd"]), ("capp", r["capp"]), ("delta_p", r["delta_p"]),
                               ("identity", r["identity_similarity"]),
                               ("mouth_r", correlation(r["tracks"]["jaw"], truth_jaw)), ("latent_mouth_r", asked[name])):
                per[name][key].append(value)
            try:
                feats_fvd[name].append(fvd_features(video, fnet, hop=FVD_HOP))
            except InputError:
                pass                                              # a clip shorter than one FVD window
            if name in rows_kw:                                   # the same clip with the controls set
                controlled = generate(feats, rows_kw[name], seed, **clip_ctrl)
                est = estimate(drive(controlled), att)
                ctrl_per[name]["latent_gaze_error_deg"].append(
                    _gaze_error(latent_factors(latent, controlled[:, 6:].cpu()), clip_ctrl))
                want = ctrl["distance"] * (float(r["distance_mean"]) / float(model.distance_mean)
                                           if pose == "relative" else 1.0)
                for key, value in _control_errors(est, clip_ctrl, want).items():
                    ctrl_per[name][key].append(value)
                    if key == "emotion_acc":
                        by_emotion[name].setdefault(clip_ctrl["emotion"], []).append(value)

    if not ctrl_per[OTHER]["emotion_acc"]:
        ctrl_per.pop(OTHER)
        notes.append(f"row '{OTHER}' skipped: no actor of these clips has a second clip")
    rows = {n: {k: _mean(v) for k, v in per[n].items() if k != "fvd_lite"} for n in names}
    ref = np.concatenate(feats_fvd[REAL]) if feats_fvd[REAL] else None
    for n in names:
        ok = ref is not None and feats_fvd[n] and sum(map(len, feats_fvd[n])) >= 2 and len(ref) >= 2
        rows[n]["fvd_lite"] = round(max(0.0, frechet_distance(np.concatenate(feats_fvd[n]), ref)), 3) if ok else None
        rows[n] = {k: rows[n][k] for k in METRICS}
    if rows[REAL]["fvd_lite"] is None:
        notes.append("FVD-lite skipped: the clips are shorter than two FVD windows")

    # diversity: head angles across seeds for one audio
    diversity = {}
    for name, kw in rows_kw.items():
        runs = torch.stack([generate(first_feats, kw, seed + k)[:, :3] for k in range(DIVERSITY_SEEDS)])
        diversity[name] = round(float(runs.std(0).mean()), 4)

    # seams: one long audio made of the test clips' speech
    W = model.cfg.window
    speech = np.concatenate([c["audio"] for c in clips])
    long_feats = encoder.encode_array(np.resize(speech, int(SEAM_SECONDS * SAMPLE_RATE)))   # cycled, cut to 60 s
    seams = {"frames": int(len(long_feats)), "windows": int(math.ceil(len(long_feats) / W)), "rows": {}}
    for name, kw in rows_kw.items():
        runs = [seam_jerk(model.normalise(generate(long_feats, kw, seed + k).to(dev)).cpu(), W) for k in range(SEAM_SEEDS)]
        at, inside = (float(np.mean([r[key] for r in runs])) for key in ("jerk_boundary", "jerk_inside"))
        seams["rows"][name] = {"jerk_boundary": round(at, 5), "jerk_inside": round(inside, 5),
                               "ratio": round(at / max(inside, 1e-12), 3), "ratio_per_seed": [r["ratio"] for r in runs]}

    report = {"component": "motion", "preset": p.name, "checkpoint": str(checkpoint or checkpoint_file(p)),
              "trained_steps": model.meta.get("steps"), "pose": pose, "clips": len(clips),
              "frames": int(off[len(clips)]), "seed": int(seed), "rows": rows,
              "controls": {"requested": {"gaze": list(ctrl["gaze"]), "distance": ctrl["distance"],
                                         "emotion": list(emotions) if len(emotions) > 1 else emotions[0]},
                           "rows": {n: {k: _mean(v) for k, v in d.items()} for n, d in ctrl_per.items()},
                           "emotion_acc_by_request": {n: {e: _mean(v) for e, v in d.items()}
                                                      for n, d in by_emotion.items()}},
              "diversity": diversity, "seams": seams, "notes": notes}
    report["markdown"] = markdown_table(report)
    report["eval_seconds"] = round(time.perf_counter() - t0, 1)
    if out_json:
        from vasa_lite.metrics import write_report

        write_report(report, out_json)
    if record:
        from vasa_lite.metrics import record_metrics

        record_metrics("motion", p, {k: report[k] for k in ("rows", "controls", "diversity", "seams")})
    return report


def bench_motion(preset="cpu", seed: int = 0, device=None, frames: "int | None" = None, repeats: int = 2) -> dict:
    """`vasa-lite bench motion`: frames/s of motion generation alone (no audio encoding, no decoding) with the
    default guidance, 50 DDPM steps and 10 DDIM steps, on `frames` frames of audio features (default 10 s).
    Random weights of the preset's shape when no checkpoint exists: speed does not depend on them."""
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device
    from vasa_lite.motion.generate import generate_motion
    from vasa_lite.motion.guidance import guidance_scales
    from vasa_lite.motion.network import build_network
    from vasa_lite.motion.train import checkpoint_file, load_motion

    p = get_preset(preset)
    dev = pick_device(device)
    try:
        model, weights = load_motion(p, device=dev), str(checkpoint_file(p))
    except CheckpointError:
        torch.manual_seed(seed)
        model, weights = build_network(p).to(dev).eval(), "random (no checkpoint)"
    n = int(frames or 10 * FPS)
    if n < 1:
        raise InputError(f"--frames must be at least 1, got {n}")
    feats = torch.randn(n, model.audio_dim, generator=torch.Generator().manual_seed(seed))
    generate_motion(feats[:model.cfg.window], model=model, sampler="ddim", steps=2)        # warm-up
    out = {"target": "motion", "preset": p.name, "device": str(dev), "threads": torch.get_num_threads(),
           "weights": weights, "frames": n, "window": model.cfg.window,
           "windows": math.ceil(n / model.cfg.window), "guidance": guidance_scales(None, model.cfg)}
    for key, kw in (("ddpm_50_steps", {"sampler": "ddpm", "steps": 50}),
                    ("ddim_10_steps", {"sampler": "ddim", "steps": 10})):
        walls = []
        for _ in range(max(1, repeats)):
            t = time.perf_counter()
            generate_motion(feats, model=model, seed=seed, **kw)
            walls.append(time.perf_counter() - t)
        wall = min(walls)
        out[key] = {"wall_s": round(wall, 4), "frames_per_s": round(n / wall, 1),
                    "x_real_time": round(n / FPS / wall, 2), "ms_per_window": round(1000 * wall / out["windows"], 2)}
    out["ddim_speedup"] = round(out["ddim_10_steps"]["frames_per_s"] / out["ddpm_50_steps"]["frames_per_s"], 2)
    return out


__all__ = ["eval_motion", "bench_motion", "seam_jerk", "markdown_table", "correlation", "main_gaze", "true_controls",
           "latent_factors", "check_rows", "CONTROLS", "GENERATED", "METRICS", "ROW_KEYS"]
