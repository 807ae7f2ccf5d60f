"""One portrait and one speech clip in, a talking-face video out: the whole VASA-1 pipeline in one call.

    from vasa_lite import animate
    result = animate("grace_hopper", "speech.wav", gaze=(0, 0), emotion="happy", preset="cpu")
    result.frames          # uint8 [T, H, W, 3] at 25 fps, T = ceil(len(audio) / 640) at 16 kHz
    result.save("out.mp4") # with the speech muxed in

The steps, as the paper describes them:
1. the portrait is framed like the course's renders (`real.align_crop`: face detection, a square crop at the
   preset's size) and encoded ONCE by the face latent model: V_app, z_id and its own pose and dynamics. The
   appearance and identity then stay fixed for the whole video;
2. the speech becomes one audio feature per 25 fps frame (`audio.encode`);
3. the motion generator turns the features and the controls into motion codes [z_pose, z_dyn], window by window
   (`motion.generate_motion`: 50 DDPM steps and multi-condition CFG by default);
4. the decoder moves the portrait's V_app to each frame's motion, in batches.

**Pose: relative to the portrait, not absolute** (`pose="relative"`, the default). The generator learned the
world's absolute head poses: yaw, pitch, roll in degrees, the head's position and its log size. Decoding them
as they are would first re-pose the portrait to wherever the generated clip happens to be (a portrait turned
10 degrees would snap towards the world's average pose in the first frame, and a photo framed a little off the
renders' framing would jump), and any bias of the pose encoder on this face would become a lasting offset. So
the generated pose is used as a *deviation from the generator's training mean pose*, added to the portrait's
own pose:

    z_pose(t) = z_pose(portrait) + (z_pose_generated(t) - mean training z_pose)

A portrait that already looks at the camera keeps looking at it on average, and nods, turns and sways around
that as the generated motion does. Three reasons for the training mean rather than the generated clip's first
frame or its mean: the first generated frame is a random sample (anchoring on it would offset the whole clip by
a random amount); the clip's mean needs the whole clip first (no streaming); and both would cancel what the
controls ask for. With the training mean, the distance control keeps its meaning (1.15 = a head 1.15 / mean
distance farther than in the portrait, which `align_crop` frames at about the mean distance), a clip may
still lean as the generator chose, and the result depends on nothing but the seed. z_dyn (mouth, eyes, brows,
expression) is used as generated: the decoder undoes the portrait's own expression when it builds V_app, so
a photo with an open mouth still closes it. `pose="absolute"` decodes the generated pose as it is, for
comparison (`eval_motion` takes the same switch).
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import torch

from vasa_lite.errors import InputError
from vasa_lite.world.params import FPS, SAMPLE_RATE

POSE_MODES = ("relative", "absolute")
DECODE_BATCH = 32            # frames decoded at once: bounded memory on long audio


@dataclasses.dataclass
class Animation:
    """What `animate` returns. frames: uint8 [T, H, W, 3]; audio: float32 mono at `sr` (16 kHz); motion: the
    generated codes [T, 6 + dyn_dim]; driving: what the decoder got (motion with the pose made relative);
    portrait: the aligned source frame uint8 [H, W, 3]; timing: seconds per stage; settings: the inputs used."""
    frames: np.ndarray
    audio: np.ndarray
    motion: torch.Tensor
    driving: torch.Tensor
    portrait: np.ndarray
    timing: dict
    settings: dict
    fps: int = FPS
    sr: int = SAMPLE_RATE

    def save(self, path) -> Path:
        """Write the video as an H.264 mp4 with the speech as AAC (media.write_video)."""
        from vasa_lite.media import write_video

        return Path(write_video(path, self.frames, fps=self.fps, audio=self.audio, sr=self.sr))

    def show(self, width: "int | None" = None):
        """The video with sound, for a notebook (media.show_video)."""
        from vasa_lite.media import show_video

        return show_video(self.frames, audio=self.audio, width=width, fps=self.fps, sr=self.sr)

    def summary(self) -> dict:
        """JSON-ready: frames, size, fps, seconds, settings and timing."""
        t, h, w = self.frames.shape[:3]
        return {"frames": int(t), "size": [int(h), int(w)], "fps": self.fps, "seconds": round(t / self.fps, 2),
                **self.settings, "timing": self.timing}


def portrait_frame(portrait, size: int) -> np.ndarray:
    """The portrait as the latent model's input: uint8 [size, size, 3].

    portrait: "grace_hopper", "astronaut", "actor" (the world's default actor) or "actor:N" (the actor of seed N),
    an image path, or an image array / tensor / PIL image. An image already size x size is taken to be an aligned
    face frame (e.g. a world render) and passes through; any other goes through face detection and the renders'
    framing (`real.align_crop`). No face: InputError."""
    from vasa_lite import real

    if isinstance(portrait, str) and (portrait == "actor" or portrait.startswith("actor:")):
        from vasa_lite.world.render import actor_portrait

        seed = portrait.partition(":")[2]
        if seed and not seed.isdigit():
            raise InputError(f"portrait {portrait!r}: write actor:N with N a whole number (a world actor's seed)")
        return actor_portrait(int(seed) if seed else None, size)
    image = real.load_portrait(os.fspath(portrait) if isinstance(portrait, os.PathLike) else portrait)
    if image.shape[:2] == (size, size):
        return image
    return real.align_crop(image, size=size)


def driving_motion(motion: torch.Tensor, portrait_pose: torch.Tensor, mean_pose: torch.Tensor,
                   pose: str = "relative", offset=None) -> torch.Tensor:
    """The motion [T, 6 + dyn_dim] the decoder gets. "relative": z_pose = portrait's + (generated - mean_pose)
    (see the module doc); "absolute": the generated motion as it is. offset: (yaw, pitch, roll) degrees added to
    every frame's head angles (z_pose's first three numbers are degrees). z_dyn is never changed."""
    if pose not in POSE_MODES:
        raise InputError(f"unknown pose mode {pose!r}; choose one of: {', '.join(POSE_MODES)}")
    out = motion.clone()
    if pose == "relative":
        out[:, :6] = motion[:, :6] - mean_pose.to(motion) + portrait_pose.reshape(1, 6).to(motion)
    if offset is not None:
        out[:, :3] += torch.as_tensor(offset, dtype=out.dtype).reshape(1, 3)
    return out


@torch.no_grad()
def render_motion(latent, source: dict, motion: torch.Tensor, batch: int = DECODE_BATCH) -> torch.Tensor:
    """Frames [T, 3, S, S] in [0, 1] (on the CPU) of one encoded source (latent.encode_source) moved to each
    motion [T, 6 + dyn_dim], decoded `batch` frames at a time."""
    dev = source["image"].device
    out = []
    for s in range(0, len(motion), batch):
        m = motion[s:s + batch].to(dev)
        out.append(latent.decode(source, m[:, :6], m[:, 6:]).clamp(0, 1).cpu())
    return torch.cat(out)


def load_pipeline(preset="cpu", device=None) -> tuple:
    """(face latent model, motion generator, audio encoder): the shipped checkpoints the pipeline runs on (each
    loader caches, so calling this again costs nothing)."""
    from vasa_lite.audio import load_audio_encoder
    from vasa_lite.latent.model import load_latent
    from vasa_lite.motion.train import load_motion

    return load_latent(preset, device=device), load_motion(preset, device=device), load_audio_encoder(preset, device=device)


def check_choices(sampler: str, pose: str) -> None:
    """An InputError for an unknown sampler or pose mode, before any model loads."""
    from vasa_lite.motion.schedule import SAMPLERS

    if sampler not in SAMPLERS:
        raise InputError(f"unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    if pose not in POSE_MODES:
        raise InputError(f"unknown pose mode {pose!r}; choose one of: {', '.join(POSE_MODES)}")


@torch.no_grad()
def encode_portrait(latent, frame: np.ndarray) -> dict:
    """The decoder's source (latent.encode_source) of an aligned portrait uint8 [H, W, 3]: once per video."""
    return latent.encode_source(torch.from_numpy(np.array(frame)).permute(2, 0, 1)[None])


def render_generated(latent, source: dict, model, motion: torch.Tensor, pose: str = "relative", offset=None) -> tuple:
    """(driving motion, frames [T, 3, S, S] in [0, 1]) of motion generated by `model`: the pose made relative (or
    not) to the portrait's with the generator's own mean pose, offset by (yaw, pitch, roll) degrees if given, then
    decoded."""
    driving = driving_motion(motion, source["z_pose"][0].cpu(), model.motion_mean[:6].cpu(), pose, offset)
    return driving, render_motion(latent, source, driving)


def frames_of(latent, source: dict, model, motion: torch.Tensor, pose: str, offset=None) -> tuple:
    """(driving motion, frames uint8 [T, H, W, 3]) of generated motion, see render_generated."""
    from vasa_lite.world.render import to_uint8

    driving, frames = render_generated(latent, source, model, motion, pose, offset)
    return driving, to_uint8(frames)


def animate(portrait, audio, gaze=None, distance=None, emotion=None, guidance: "dict | None" = None,
            steps: "int | None" = None, seed: int = 0, sampler: str = "ddpm", preset="cpu", device=None,
            progress: bool = False, sr: "int | None" = None, pose: str = "relative") -> Animation:
    """A talking-face video of `portrait` speaking `audio` (see the module doc for the steps).

    portrait: a path, "grace_hopper" / "astronaut", or an image array (see `portrait_frame`). audio: a path
    (anything ffmpeg reads) or samples at `sr` Hz (default 16 kHz); silent, empty or shorter than 40 ms: InputError.
    gaze: (yaw, pitch) degrees, default forward; distance: in [0.8, 1.25], default the mean; emotion: one of
    world.params.EMOTIONS or (name, intensity in [0, 1]), default none; guidance: {condition: scale}, default audio 0.5 and gaze 1.0 (the
    paper's). steps: sampling steps (default 50 for "ddpm", the preset's ddim_steps, 10, for "ddim"). seed: the
    same seed gives the same video. pose: "relative" (default) or "absolute", see the module doc.

    Returns an Animation: frames uint8 [T, H, W, 3] at 25 fps with T = ceil(samples at 16 kHz / 640), the 16 kHz
    audio, the motion, the aligned portrait and the time each stage took."""
    from vasa_lite.audio import prepare_audio
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device
    from vasa_lite.motion.generate import check_controls, generate_motion
    from vasa_lite.motion.guidance import guidance_scales

    t_start = time.perf_counter()
    p = get_preset(preset)
    # every cheap check first, so bad input fails before any model loads
    controls = check_controls(gaze, distance, emotion)
    guidance_scales(guidance, p.motion)
    check_choices(sampler, pose)
    samples = prepare_audio(audio, sr)
    frame = portrait_frame(portrait, p.world.size)
    t_inputs = time.perf_counter()

    dev = pick_device(device)
    latent, model, encoder = load_pipeline(p, dev)
    t_load = time.perf_counter()

    source = encode_portrait(latent, frame)        # V_app, z_id and the portrait's own motion, once
    with torch.no_grad():
        feats = encoder.encode_array(samples)
    t_encode = time.perf_counter()
    motion = generate_motion(feats, gaze=controls["gaze"], distance=controls["distance"], emotion=emotion,
                             guidance=guidance, steps=steps, sampler=sampler, seed=seed, model=model, device=dev,
                             progress=progress)
    t_motion = time.perf_counter()
    driving, frames = frames_of(latent, source, model, motion, pose)
    t_end = time.perf_counter()

    n = len(frames)
    timing = {"inputs_s": t_inputs - t_start, "load_s": t_load - t_inputs, "encode_s": t_encode - t_load,
              "motion_s": t_motion - t_encode, "decode_s": t_end - t_motion, "total_s": t_end - t_start}
    timing = {k: round(v, 3) for k, v in timing.items()}
    timing["motion_frames_per_s"] = round(n / max(t_motion - t_encode, 1e-9), 1)
    timing["decode_frames_per_s"] = round(n / max(t_end - t_motion, 1e-9), 1)
    settings = {"preset": p.name, "seed": int(seed), "sampler": sampler,
                "steps": int(steps if steps is not None else (p.motion.ddim_steps if sampler == "ddim"
                                                              else p.motion.sample_steps)),
                "guidance": guidance_scales(guidance, p.motion), "pose": pose,
                "gaze": list(controls["gaze"]) if controls["gaze"] else None, "distance": controls["distance"],
                "emotion": controls["emotion"], "emotion_intensity": controls["intensity"], "device": str(dev)}
    return Animation(frames=frames, audio=samples, motion=motion, driving=driving, portrait=frame, timing=timing,
                     settings=settings)


__all__ = ["animate", "Animation", "portrait_frame", "driving_motion", "render_motion", "frames_of", "encode_portrait",
           "check_choices", "load_pipeline", "POSE_MODES"]
