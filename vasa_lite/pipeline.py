"""`vasa-lite train all --preset P`: every checkpoint the pipeline needs, trained in order, resumable.

Order matters: the audio encoder and the instruments first (the latent space's cross-identity loss uses the identity
network), then the face latent space in six stages (the whole model with the decoder blind to z_dyn, then a new
dynamics encoder alone on the crops that model's pose encoder places, then z_dyn in the decoder with the dynamics
encoder frozen, then the expression refiner alone with the rest frozen, see latent.networks.ExpressionRefiner, then
the whole decoder again with the motion encoders frozen, then the renderer and the refiner with the pixel warp's
self-correction on), then the motion generator and the regression baseline (they learn from motion codes the latent
space's encoders compute).

Each stage writes its checkpoint under data/checkpoints/ (or $VASA_LITE_CHECKPOINTS). A stage whose checkpoint is
already complete (its recorded steps and settings are the stage's) is skipped; an interrupted one resumes from its
.resume.pt. So running the command again after a stop picks up where it left off. Once a stage of train all trains,
every later stage trains too: they learned from what it made before (the ablations name what each of theirs learns
from)."""
from __future__ import annotations

import time
from pathlib import Path

# the latent model's parts other than the refiner: frozen in the refiner stage
LATENT_CORE = ("appearance", "identity", "pose", "dynamics", "flow", "occupancy", "renderer", "expression_head")
# the refiner stage: reconstruction only (the transfer and cross-identity losses cannot move it), some self pairs
# so that it learns to leave a frame alone when the expression already matches; steps per preset. On cpu, 5000 steps
# at 1e-3 show the driver's expression better than 1000 at 5e-4 (same-person transfer r: smile 0.38 -> 0.54, gaze
# yaw 0.39 -> 0.65, blink 0.00 -> 0.19); a heavier mouth-and-eye weight (region_weight 12) changed nothing
REFINER_STAGE = {"overrides": {"transfer_weight": 0.0, "cross_id_weight": 0.0, "self_pairs": 0.2, "lr": 1e-3},
                 "steps": {"smoke": 20, "cpu": 5000, "gpu": 20000}}


# train all's first latent stage: a decoder that cannot see z_dyn (the expression read-out still trains the dynamics
# encoder), so head pose has to go through z_pose; trained with z_dyn in from the start, z_dyn carries head pose
BLIND_STAGE = {"overrides": {"dyn_in_decoder": False}}
# then a new dynamics encoder learns the expression read-out alone, on the crops the blind model's own (now fixed)
# pose encoder places. No decoder runs, so it can afford a bank of its own, 3x the latent bank (cpu: 96 frames per
# actor, rendered once in about 3.5 min): against 32 frames and 12000 steps, val R² jaw 0.83 -> 0.90, blink 0.63 ->
# 0.72, gaze yaw 0.63 -> 0.80 (36000 steps, 8.6 min). Steps and frames per actor per preset; gpu keeps its latent
# bank (1000 actors x 32 frames, as many frames as cpu's 96 per actor, 6 GB at 256 px; 3x that would not fit a Colab)
READOUT_STAGE = {"steps": {"smoke": 20, "cpu": 36000, "gpu": 90000}, "per_actor": {"cpu": 96}}
# then z_dyn joins the decoder, from that model and at a lower learning rate. The dynamics encoder and its
# read-out stay frozen: trained on, z_dyn takes head pose back (cpu: head-angle R² 0.44 instead of 0.06). So does the
# pose encoder, which places z_dyn's face crops: moved, it would show the dynamics encoder crops it never learned.
# Self pairs teach the decoder to keep a frame's own detail (cpu: self reconstruction 23.8 -> 27.7 dB).
DYNAMICS_STAGE = {"overrides": {"dyn_in_decoder": True, "lr": 5e-4, "self_pairs": 0.2},
                  "freeze": ("dynamics", "expression_head", "pose"), "steps": {"smoke": 20, "cpu": 1200, "gpu": 6000}}
# then the decoder (everything but the motion encoders, the refiner included) trains on with that stage's recipe.
# The motion encoders stay as they were, so motion codes computed before it (and the generators that learned from
# them) stay valid. On cpu, 3000 steps (43 min) after the refiner: self reconstruction 27.7 -> 28.7 dB, cross-identity
# 21.2 -> 21.4 dB, pose control 2.7 -> 2.4 degrees, and the reenacted frames show more of the driver's expression
# (gain jaw 0.47 -> 0.50, smile 0.37 -> 0.49, gaze yaw 0.64 -> 0.72, blink 0.13 -> 0.18). Steps per preset; the
# ablations' two-stage recipe has no such stage
DECODER_STAGE = {"steps": {"smoke": 20, "cpu": 3000, "gpu": 10000}}
# last, the same recipe with the pixel warp's self-correction on (LatentConfig.self_flow, see FaceLatentModel.decode), a
# setting the checkpoint records, so that the renderer and the refiner learn to trust the corrected warp. On cpu,
# switched on without training, it took self reconstruction from 28.8 to 30.3 dB (same-person 24.3 -> 24.4,
# cross-identity unchanged; 128 pairs). Everything that makes the warp stays frozen: the correction cancels any error
# the driving warp shares with the source's own, so trained with it the warp drifts (cpu: training PSNR 23.2 -> 18.2 dB
# in 100 steps with the correction held fixed in the gradient, 22.4 -> 19.5 dB in 500 with the gradient through it)
SELF_FLOW_STAGE = {"overrides": {"self_flow": 3}, "steps": {"smoke": 20, "cpu": 1000, "gpu": 3000},
                   "freeze": DYNAMICS_STAGE["freeze"] + ("appearance", "identity", "flow", "occupancy")}


def _latent_stages(add, p, name: str, overrides: "dict | None" = None, after=None, blind_first: bool = True) -> None:
    """The latent space's stages: the whole model (blind_first: first with the decoder blind to z_dyn, as
    `{name}_blind`, then a new dynamics encoder on its crops, `{name}_dynamics`, then with z_dyn in and the
    dynamics encoder frozen), then (when the preset has one) its refiner alone on top (`{name}_refiner` when a
    decoder stage follows), then (blind_first only) the decoder stage, everything but the motion encoders, from there
    (`{name}_decoder`), and the same with the warp's self-correction on.
    after: the stages the first one learns from (see _stage_list)."""
    from vasa_lite.checkpoints import checkpoint_path

    train, overrides = "vasa_lite.latent.train:train_latent", dict(overrides or {})
    decoder_steps = DECODER_STAGE["steps"].get(p.name, 3000) if blind_first else 0
    core = f"{name}_base" if p.latent.refiner_width or decoder_steps else name       # the whole model's last stage
    refined = f"{name}_refiner" if decoder_steps else name
    chain = []
    if blind_first:
        chain.append((f"{name}_blind", {"overrides": {**overrides, **BLIND_STAGE["overrides"]}}))
        chain.append((f"{name}_dynamics", {"train": "vasa_lite.latent.train:train_dynamics",
                                           "steps": READOUT_STAGE["steps"].get(p.name, 36000),
                                           "per_actor": READOUT_STAGE["per_actor"].get(p.name)}))
        chain.append((core, {"overrides": {**overrides, **DYNAMICS_STAGE["overrides"]},
                             "freeze": DYNAMICS_STAGE["freeze"], "steps": DYNAMICS_STAGE["steps"].get(p.name, 2000)}))
    else:
        chain.append((core, {"overrides": overrides} if overrides else {}))
    if p.latent.refiner_width:
        chain.append((refined, {"freeze": LATENT_CORE, "overrides": {**overrides, **REFINER_STAGE["overrides"]},
                                "steps": REFINER_STAGE["steps"].get(p.name, 2000)}))
    if decoder_steps:
        recipe = {**overrides, **DYNAMICS_STAGE["overrides"]}
        chain.append((f"{name}_decoder", {"overrides": recipe, "freeze": DYNAMICS_STAGE["freeze"],
                                          "steps": decoder_steps}))
        chain.append((name, {"overrides": {**recipe, **SELF_FLOW_STAGE["overrides"]},
                             "freeze": SELF_FLOW_STAGE["freeze"], "steps": SELF_FLOW_STAGE["steps"].get(p.name, 1000)}))
    prev = None
    for stage, kw in chain:
        out, fn = checkpoint_path(stage, p.name), kw.pop("train", train)
        if prev is None:
            add(stage, fn, out=out, after=after, **kw)
        else:
            add(stage, fn, out=out, init=checkpoint_path(prev, p.name), after=(prev,), **kw)
        prev = stage


def _stage_list(p):
    """A list of stages and the `add(name, train, after=None, **kwargs)` that appends to it. after: the names of the
    earlier stages this one learns from (None: all of them), so it retrains when one of them does."""
    from vasa_lite.checkpoints import checkpoint_path

    out = []

    def add(name, spec, after=None, **kw):
        out.append({"name": name, "train": spec, "kwargs": kw, "after": None if after is None else tuple(after),
                    "checkpoint": kw.get("out") or checkpoint_path(name, p.name)})
    return out, add


def stages(preset) -> list[dict]:
    """The stages of `train all` for a preset, in order: name, the train function, its keyword arguments, and the
    checkpoint it writes."""
    from vasa_lite.config import get_preset

    p = get_preset(preset)
    out, add = _stage_list(p)
    add("audio", "vasa_lite.audio:train_audio")
    for name in ("attributes", "identity", "fvd", "syncnet"):      # syncnet tracks faces with the attribute net
        add(name, f"vasa_lite.instruments.{name}:train_{name}")
    add("capp", "vasa_lite.instruments.capp:train_capp")
    _latent_stages(add, p, "latent")
    add("motion", "vasa_lite.motion.train:train_motion")
    add("regression", "vasa_lite.motion.train:train_motion", baseline="regression")
    return out


NO_TRANSFER = {"transfer_weight": 0.0}


def generator_steps(p) -> "int | None":
    """The training steps of the preset's shipped motion generator (None when there is none): an ablation's generator
    trains as long, so that its row differs from the shipped row only in what it ablates."""
    from vasa_lite.checkpoints import checkpoint_path, load_checkpoint
    from vasa_lite.errors import CheckpointError

    try:
        return int(load_checkpoint(checkpoint_path("motion", p.name))[1]["steps"])
    except (CheckpointError, KeyError, ValueError):
        return None


def ablation_stages(preset) -> list[dict]:
    """The stages of `train ablations`: the models of the ablation rows of `eval all` (vasa_lite.table):
    - a motion generator on generic log-mel features (motion_mel_<preset>);
    - a latent space trained without the transfer-consistency loss (latent_notransfer_<preset>), and a motion
      generator trained on its codes (motion_notransfer_<preset>);
    - its control: the same stages with the loss on (latent_control_<preset>, motion_control_<preset>). The two
      differ only in the transfer weight. Both take the two-stage recipe (the whole model with z_dyn in the decoder
      from the start, then the refiner) without train all's blind first stage: the loss is meant to keep head pose
      out of z_dyn, which the blind stage would do in its place.
    Each generator trains as many steps as the shipped one (generator_steps)."""
    from vasa_lite.checkpoints import checkpoint_path
    from vasa_lite.config import get_preset

    p = get_preset(preset)
    out, add = _stage_list(p)
    n = generator_steps(p)
    steps = {"steps": n} if n else {}
    # each model learns from the shipped audio encoder and instruments, not from another ablation's model
    add("motion_mel", "vasa_lite.motion.train:train_motion", features="mel", out=checkpoint_path("motion_mel", p.name),
        after=(), **steps)
    for name, overrides in (("notransfer", NO_TRANSFER), ("control", None)):
        # the two-stage recipe (no blind first stage) the ablation models were made with
        _latent_stages(add, p, f"latent_{name}", overrides, after=(), blind_first=False)
        add(f"motion_{name}", "vasa_lite.motion.train:train_motion", after=(f"latent_{name}",),
            latent=checkpoint_path(f"latent_{name}", p.name), out=checkpoint_path(f"motion_{name}", p.name), **steps)
    return out


def stage_done(stage: dict, steps: "int | None") -> bool:
    """A stage is complete when its checkpoint exists and records the steps and the config overrides the stage asks
    for (so a checkpoint that an older recipe left under the same name is trained again)."""
    from vasa_lite.checkpoints import load_checkpoint
    from vasa_lite.errors import CheckpointError

    path = Path(stage["checkpoint"])
    if not path.exists():
        return False
    try:
        _, meta = load_checkpoint(path)
    except CheckpointError:
        return False
    config = (meta.get("extra") or {}).get("config") or {}
    overrides = stage["kwargs"].get("overrides") or {}
    if any(key not in config or config[key] != value for key, value in overrides.items()):
        return False
    if stage["train"].endswith(":train_motion") and not _same_latent(stage, meta):
        return False
    if stage["train"].endswith(":train_motion") and not _same_network(stage, meta):
        return False
    per_actor = stage["kwargs"].get("per_actor")           # the read-out stage's own bank
    if per_actor is not None and (meta.get("extra") or {}).get("per_actor") != per_actor:
        return False
    want = stage["kwargs"].get("steps") or steps
    return want is None or int(meta.get("steps", -1)) == int(want)


def _same_network(stage: dict, meta: dict) -> bool:
    """A motion generator of another network than the preset asks for (its size, parameterisation or audio
    projection, train.RECORDED), say one trained before the preset changed, is trained again."""
    import dataclasses

    from vasa_lite.config import get_preset
    from vasa_lite.motion.train import RECORDED, network_settings, recorded_settings

    cfg = dataclasses.replace(get_preset(meta.get("preset", "cpu")).motion, **(stage["kwargs"].get("overrides") or {}))
    return recorded_settings(meta) == network_settings({k: getattr(cfg, k) for k in RECORDED})


def _same_latent(stage: dict, meta: dict) -> bool:
    """A motion generator learned from the motion codes of one latent model: it is stale once that model's encoders
    change (say a new shipped latent under the mel ablation, which no stage of its list trains)."""
    from vasa_lite.checkpoints import checkpoint_path
    from vasa_lite.motion.data import latent_sources

    trained_on, now = latent_sources(meta, stage["kwargs"].get("latent")
                                     or checkpoint_path("latent", meta.get("preset", "cpu")))
    return trained_on is None or trained_on == now


def run_stages(todo: list[dict], p, label: str, seed: int = 0, device=None, steps: "int | None" = None,
               resume: bool = True, progress: bool = True) -> dict:
    """Train stages in order, skipping complete ones (see the module doc); each stage's status and seconds."""
    from vasa_lite.cli import _resolve

    report, trained = {}, set()
    for i, stage in enumerate(todo):
        name = stage["name"]
        after = stage.get("after")
        learns_from = {s["name"] for s in todo[:i]} if after is None else set(after)
        if resume and not (trained & learns_from) and stage_done(stage, steps):
            report[name] = {"status": "already complete", "checkpoint": str(stage["checkpoint"])}
            continue
        kw = dict(stage["kwargs"])
        if steps is not None:
            kw["steps"] = steps
        if progress:
            print(f"== {label}: {name} ({p.name})", flush=True)
        t = time.perf_counter()
        _resolve(stage["train"])(preset=p, seed=seed, device=device, resume=resume, progress=progress, **kw)
        trained.add(name)
        report[name] = {"status": "trained", "seconds": round(time.perf_counter() - t, 1),
                        "checkpoint": str(stage["checkpoint"])}
    return report


def _one_folder(out, command: str) -> None:
    from vasa_lite.errors import InputError

    if out is not None:
        raise InputError(f"{command} writes each stage's own checkpoint; set VASA_LITE_CHECKPOINTS=DIR to use "
                         "another folder")


def train_all(preset="cpu", seed: int = 0, device=None, steps: "int | None" = None, resume: bool = True, out=None,
              progress: bool = True) -> dict:
    """Run every stage in order (see the module doc); returns each stage's status and seconds. steps: override every
    stage's step count (a quick trial)."""
    from vasa_lite.config import get_preset

    _one_folder(out, "train all")
    p = get_preset(preset)
    return {"preset": p.name, "stages": run_stages(stages(p), p, "train all", seed, device, steps, resume, progress)}


def train_ablations(preset="cpu", seed: int = 0, device=None, steps: "int | None" = None, resume: bool = True,
                    out=None, progress: bool = True) -> dict:
    """`vasa-lite train ablations`: the stages of ablation_stages, in order, skipped or resumed like train all's.
    steps: override every stage's steps (a quick trial)."""
    from vasa_lite.config import get_preset

    _one_folder(out, "train ablations")
    p = get_preset(preset)
    report = run_stages(ablation_stages(p), p, "train ablations", seed, device, steps, resume, progress)
    return {"preset": p.name, "stages": report, "no_transfer_overrides": NO_TRANSFER}
