"""`vasa-lite demo`: the course's main job in one command. The world's default actor is the portrait, a built-in
sentence spoken by espeak-ng is the speech, and the shipped checkpoints generate the talking-face video
(`vasa_lite.animate`), written with sound to outputs/demo.mp4.

`world_clip` renders the same sentence performed by the world itself (ground truth, no networks), for
comparison with what the models make."""
from __future__ import annotations

from pathlib import Path

DEFAULT_TEXT = "Hello! I am a talking head from the course's own world. Every frame of me is rendered in 3D."


def world_clip(text: str = DEFAULT_TEXT, lang: str = "en", actor_seed=None, emotion: str = "happy",
               intensity: float = 0.6, size: int = 128, seed: int = 0, device=None, progress=False):
    """Frames (uint8 [T,H,W,3]) and 16 kHz audio of a world actor speaking `text`: the world's own performance."""
    from vasa_lite.world.actor import DEFAULT_ACTOR_SEED, sample_actor
    from vasa_lite.world.perform import perform_text
    from vasa_lite.world.render import Renderer

    perf = perform_text(text, lang=lang, emotion=emotion, intensity=intensity, seed=seed)
    actor = sample_actor(DEFAULT_ACTOR_SEED if actor_seed is None else actor_seed)
    frames = Renderer(size=size, device=device).render(actor, perf.tracks)
    frames = (frames.clamp(0, 1) * 255).round().to("cpu").byte().permute(0, 2, 3, 1).numpy()
    return frames, perf.speech.audio, perf


def speech_of(text: str, lang: str = "en"):
    """16 kHz speech of `text` by espeak-ng (an unknown language: InputError listing the codes)."""
    from vasa_lite.world.speech import speak

    return speak(text, lang=lang).audio


def run_demo(out=None, preset="cpu", seed: int = 0, text=None, lang: str = "en", device=None, progress=True,
             portrait="actor", **controls):
    """Generate the demo video and write it with sound; returns the Animation (its `.path` is the mp4)."""
    from vasa_lite.media import check_video_path
    from vasa_lite.motion.animate import animate
    from vasa_lite.paths import OUTPUTS_DIR

    out = check_video_path(out if out else OUTPUTS_DIR / "demo.mp4")
    audio = speech_of(text or DEFAULT_TEXT, lang)
    result = animate(portrait, audio, preset=preset, seed=seed, device=device, progress=progress, **controls)
    result.path = result.save(out)
    return result
