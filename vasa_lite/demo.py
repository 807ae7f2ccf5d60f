"""`vasa-lite demo`: the best video the course can make so far, with sound. For now that is the world's default
actor performing a built-in sentence; later chapters replace it with a generated video from a portrait."""
from __future__ import annotations

from pathlib import Path

DEFAULT_TEXT = "Hello! I am a talking head from the course's own world. Every frame of me is rendered in 3D."


def world_clip(text: str = DEFAULT_TEXT, lang: str = "en", actor_seed=None, emotion: str = "happy",
               intensity: float = 0.6, size: int = 128, seed: int = 0, device=None, progress=False):
    """Frames (uint8 [T,H,W,3]) and 16 kHz audio of a world actor speaking `text`."""
    from vasa_lite.world.actor import DEFAULT_ACTOR_SEED, sample_actor
    from vasa_lite.world.perform import perform_text
    from vasa_lite.world.render import Renderer

    perf = perform_text(text, lang=lang, emotion=emotion, intensity=intensity, seed=seed)
    actor = sample_actor(DEFAULT_ACTOR_SEED if actor_seed is None else actor_seed)
    frames = Renderer(size=size, device=device).render(actor, perf.tracks)
    frames = (frames.clamp(0, 1) * 255).round().to("cpu").byte().permute(0, 2, 3, 1).numpy()
    return frames, perf.speech.audio, perf


def run_demo(out=None, preset="cpu", seed: int = 0, text=None, lang: str = "en", device=None, progress=True) -> Path:
    from vasa_lite.config import get_preset
    from vasa_lite.device import seed_everything
    from vasa_lite.media import write_video
    from vasa_lite.paths import OUTPUTS_DIR

    cfg = get_preset(preset)
    seed_everything(seed)
    out = Path(out) if out else OUTPUTS_DIR / "demo.mp4"
    frames, audio, _ = world_clip(text or DEFAULT_TEXT, lang=lang, size=max(cfg.world.size, 128), seed=seed,
                                  device=device, progress=progress)
    return Path(write_video(out, frames, fps=25, audio=audio, sr=16000))
