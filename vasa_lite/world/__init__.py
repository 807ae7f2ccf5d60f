"""The talking-head world: actors from seeds, speech with phoneme timing, performances, and a 3D renderer.

    from vasa_lite.world import Renderer, perform_text, sample_actor
    perf = perform_text("Hello there!", lang="en", emotion="happy", seed=0)
    frames = Renderer(size=128).render(sample_actor(7), perf.tracks)   # [T, 3, 128, 128] in [0, 1]

Submodules: params (the factor table), actor, speech, perform, render, dataset. Their functions named like a
submodule (perform.perform, render.render) are not re-exported here, so `import vasa_lite.world.perform` works.
"""
from vasa_lite.world.actor import DEFAULT_ACTOR_SEED, SPLITS, Actor, actor_seeds, sample_actor
from vasa_lite.world.params import EMOTIONS, FPS, FRAME_FACTOR_NAMES, SAMPLE_RATE, SAMPLES_PER_FRAME
from vasa_lite.world.perform import Performance, perform_text
from vasa_lite.world.render import Renderer, landmarks
from vasa_lite.world.speech import LANGUAGES, Speech, speak

__all__ = ["Actor", "sample_actor", "actor_seeds", "SPLITS", "DEFAULT_ACTOR_SEED", "Speech", "speak", "LANGUAGES",
           "Performance", "perform_text", "Renderer", "landmarks", "EMOTIONS", "FPS", "FRAME_FACTOR_NAMES",
           "SAMPLE_RATE", "SAMPLES_PER_FRAME"]
