"""Named presets. Scale is configuration, not different code: `smoke` (CI, seconds), `cpu` (a laptop,
minutes) and `gpu` (Colab T4 or bigger, larger resolution) run the same code with other numbers."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from vasa_lite.errors import InputError


@dataclass(frozen=True)
class WorldConfig:
    size: int = 128                # rendered frame size in px (64, 128 or 256)
    n_train_actors: int = 300      # disjoint seed ranges per split, see world.actor.SPLITS
    n_val_actors: int = 20
    n_test_actors: int = 30
    clips_per_actor: int = 2
    min_words: int = 6             # sentence length range of the random text generator
    max_words: int = 14
    languages: tuple = ("en", "es", "fr", "de", "it", "pt", "nl", "pl", "sv", "cs")


@dataclass(frozen=True)
class AudioConfig:
    """The course's own speech encoder (VASA-1 uses a pretrained Wav2Vec2), see vasa_lite.audio."""
    width: int = 128               # feature size D of each 25 fps frame
    layers: int = 4                # transformer blocks
    heads: int = 4
    ffn: int = 256                 # hidden size of each block's MLP
    context: int = 50              # past frames each block attends to (2 s)
    lookahead: int = 2             # future frames the first `lookahead_layers` blocks attend to (80 ms)
    lookahead_layers: int = 1      # later blocks are causal, so lookahead does not compound with depth
    dropout: float = 0.1
    steps: int = 3000              # training steps of the viseme-classification pretraining
    batch_size: int = 16
    window: int = 64               # training crop in frames (2.56 s)
    lr: float = 2e-3
    chunk_frames: int = 1500       # offline encoding works in windows of this many frames (60 s): bounded memory


@dataclass(frozen=True)
class CappConfig:
    """CAPP-lite, the paper's Contrastive Audio and Pose Pretraining metric, see vasa_lite.instruments.capp."""
    width: int = 48
    code: int = 8                  # per-frame code; a window's embedding is its `window` codes in a row
    heads: int = 4
    pose_layers: int = 6           # the paper's pose encoder is a 6-layer transformer
    audio_layers: int = 2
    window: int = 75               # 3 s at 25 fps, as in the paper
    max_shift: int = 8             # with shift_negatives: copies of a window's own pose shifted 1..max_shift frames
    shift_negatives: int = 0       # such copies per window as extra negatives (0: plain CLIP InfoNCE, the default)
    dropout: float = 0.1
    steps: int = 1200
    batch_size: int = 32
    lr: float = 1e-3


@dataclass(frozen=True)
class SyncNetConfig:
    """SyncNet-lite, the lip-sync instrument (Sc, Sd), see vasa_lite.instruments.syncnet."""
    crop_h: int = 32               # grayscale mouth crop of the tracked lower face, rows x columns
    crop_w: int = 64
    frames: int = 5                # 0.2 s of video against its 20 log-mel frames, as in SyncNet
    width: int = 32
    embed: int = 128
    max_offset: int = 15           # Sc/Sd search audio offsets -15..+15 frames, as in SyncNet
    margin: float = 2.0            # contrastive-loss margin on the embedding distance
    steps: int = 3000
    batch_size: int = 32
    lr: float = 1e-3


@dataclass(frozen=True)
class AttributesConfig:
    """The face-attribute estimator (pose, gaze, distance, emotion, mouth, tracking), see instruments.attributes."""
    size: int = 64                 # the locator sees the whole frame at this size (pose, position, face track)
    face_size: int = 64            # the face network sees a crop aligned on the face track at this size
    locator_width: int = 16
    width: int = 24
    steps: int = 4000
    batch_size: int = 32
    lr: float = 2e-3


@dataclass(frozen=True)
class FVDConfig:
    """FVD-lite's feature network (a small 3D CNN on 25-frame clips), see vasa_lite.instruments.fvd."""
    size: int = 64
    frames: int = 25               # FVD25: 25-frame clips
    width: int = 24
    features: int = 128
    steps: int = 1500
    batch_size: int = 16
    lr: float = 1e-3


@dataclass(frozen=True)
class IdentityConfig:
    """The identity network (ArcFace-style), see vasa_lite.instruments.identity."""
    size: int = 64
    width: int = 16
    embed: int = 128
    arc_margin: float = 0.3        # ArcFace's additive angular margin m (radians)
    arc_scale: float = 30.0        # ArcFace's logit scale s
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3


@dataclass(frozen=True)
class InstrumentsConfig:
    """The measuring networks, trained apart from the generator; bank sizes are frames rendered once and cached."""
    sync: SyncNetConfig = field(default_factory=SyncNetConfig)
    attributes: AttributesConfig = field(default_factory=AttributesConfig)
    fvd: FVDConfig = field(default_factory=FVDConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    train_per_actor: int = 32      # random-pose renders per train actor (attributes and identity)
    test_per_actor: int = 16       # the same for test actors (evaluation)


@dataclass(frozen=True)
class LatentConfig:
    """The face latent space (V_app, z_id, z_pose, z_dyn) and its decoder, see vasa_lite.latent.

    The volume V_app has `vol_channels` features on a `vol_depth` x S/4 x S/4 grid (S: the world's frame size)."""
    width: int = 32                # base channels of the 2D encoders
    vol_channels: int = 16         # C of V_app
    vol_depth: int = 8             # D of V_app
    id_dim: int = 64               # z_id
    dyn_dim: int = 32              # z_dyn: "a few dozen numbers"
    flow_depth: int = 4            # the non-rigid flow field: flow_depth slices at the volume's full S/4 x S/4 grid
    render_width: int = 48         # channels of the 2D renderer at the volume's resolution (half that at S/2)
    pixel_path: bool = True        # the occlusion-aware warp of source pixels (fine detail)
    # fixed-point steps that take the pixel warp's own error out of every driving warp (0: off). Decoded with its own
    # motion, a source should warp onto itself; whatever 2D flow the warp gives instead is its error, measured once
    # per source (FaceLatentModel.encode_source) and undone by inverting that self-map (see FaceLatentModel.decode)
    self_flow: int = 0
    refiner_width: int = 0         # channels of the expression refiner on the aligned face crop (0: none)
    pose_supervision: bool = True  # weak supervision of yaw/pitch/roll from the world's ground truth
    transfer_weight: float = 1.0   # VASA's pairwise pose/dynamics transfer consistency
    cross_id_weight: float = 0.3   # VASA's cross-identity loss (identity network cosine)
    pose_weight: float = 0.2       # weak pose supervision (L1 on angles / 30 degrees)
    dyn_supervision: bool = True   # weak supervision of z_dyn: a linear read-out must give the world's expression
    dyn_weight: float = 0.5        # its weight (squared error on each expression factor as a fraction of its range)
    dyn_warmup: int = 3000         # steps in which the dynamics encoder first learns the read-out alone (cheap)
    dyn_in_decoder: bool = True    # False: the decoder gets z_dyn = 0 (the read-out still trains), so pose must go
                                   # through z_pose; a first stage with it off keeps head pose out of z_dyn
    region_weight: float = 4.0     # extra L1 weight inside the mouth and eye boxes (world landmarks), 0: off
    ssim_weight: float = 0.5       # structural term beside L1
    per_actor: int = 32            # frames rendered per train actor for the latent bank
    pose_range: float = 0.6        # the bank's head pose is uniform over this fraction of each factor's range
    self_pairs: float = 0.0        # fraction of pairs with j = i (self reconstruction), used when fine-tuning
    steps: int = 2200
    batch_size: int = 8
    lr: float = 1e-3


@dataclass(frozen=True)
class MotionConfig:
    """The motion generator: a diffusion transformer over windows of [z_pose, z_dyn], see vasa_lite.motion.

    The paper gives neither the window W nor the previous-window length nor the frame rate; open peers use 25 fps,
    windows of 50 to 100 frames and 10 to 25 previous frames, so the defaults are W = 50 (2 s) and 10 (0.4 s)."""
    window: int = 50               # W: frames generated per window
    prev: int = 10                 # frames of the previous window (motion and audio) given as a condition
    layers: int = 4                # transformer encoder blocks (the paper: 8)
    width: int = 128               # token width (the paper: 512)
    heads: int = 4                 # attention heads (the paper: 8)
    ffn: int = 256                 # hidden size of each block's MLP (2x width: the cpu preset must sample fast)
    dropout: float = 0.1
    diffusion_steps: int = 1000    # T of the training noise schedule
    schedule: str = "cosine"       # alphas_cumprod of Nichol & Dhariwal (2021)
    sample_steps: int = 50         # DDPM sampling steps, as in the paper
    ddim_steps: int = 10           # the faster deterministic DDIM sampler's default
    cond_dropout: float = 0.1      # each of audio, gaze, distance, emotion is dropped with this probability
    prev_dropout: float = 0.5      # previous-window motion and audio, dropped together (a first window has none)
    audio_trunc: float = 0.1       # probability that a window's final audio frames are cut (short audio)
    velocity_weight: float = 0.0   # weight of an extra loss on frame-to-frame differences (ablation; paper: 0)
    # x0_hat = sqrt(abar_t) X_t + sqrt(1 - abar_t) F: the network F adds to a skip from X_t, so at low noise it need
    # not rebuild X_t itself (the preconditioning of Karras et al. 2022); False: x0_hat = F
    x0_skip: bool = False
    # frames of audio either side that each frame's audio projection sees (a 1-D convolution of width 2k + 1 over the
    # window's features; 0: a per-frame linear projection). Attention can gather context too, but at high noise the
    # window's tokens carry the noisy X_t beside the audio
    audio_context: int = 0
    # with audio_context = k > 0, the window also hears the k audio frames after it (its last frames then hear what
    # follows, as every other frame does); checkpoints from before it did not (train.BEFORE)
    audio_lookahead: bool = True
    # how the x0 loss weighs each timestep: "x0" uniform (the paper's simple loss); "v" by 1 / (1 - abar_t), i.e. a
    # uniform loss on the skip's output F (EDM's lambda = 1 / c_out^2; needs x0_skip); "min_snr" by min(SNR_t, 5)
    loss_weight: str = "x0"
    # decay of an exponential moving average of the weights, which the checkpoint keeps (0: the last weights)
    ema: float = 0.0
    # sigma (frames) of a Gaussian low-pass over time on generated z_pose (0: as sampled). The training targets are
    # the pose encoder's per-frame estimates, jerkier than the true head, and the sampler adds more (generate.py)
    pose_smooth: float = 1.0
    guidance_audio: float = 0.5    # default CFG scale lambda_audio (the paper's)
    guidance_gaze: float = 1.0     # default CFG scale lambda_gaze (the paper's)
    steps: int = 6000
    batch_size: int = 32
    lr: float = 1e-3


@dataclass(frozen=True)
class StreamConfig:
    """Real-time streaming, see vasa_lite.stream. Audio arrives `chunk_ms` at a time; the first motion window starts
    once `prefix` frames of audio are in (truncated audio, as the motion generator was trained with), and each later
    window makes `hop` frames. Latency is at least (hop frames of audio) + (one window's compute), plus the player's
    `playout_ms` before the first frame is shown."""
    chunk_ms: int = 40             # one video frame of audio per chunk, as a live source would send it
    prefix: int = 2                # frames of audio the first window waits for (80 ms)
    hop: int = 2                   # frames per later window (80 ms): equal to prefix, so later frames keep pace
    sampler: str = "ddim"          # deterministic and few-step: the streaming default
    steps: int = 3                 # sampling steps per window (notebook 06 measures the trade-off)
    # the player shows the first frame this long after it is ready: a jitter buffer for later windows that take
    # longer than the first one (on 2 CPU cores up to about 20 ms); it adds to the latency a viewer sees
    playout_ms: float = 30.0


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    world: WorldConfig = field(default_factory=WorldConfig)
    batch_size: int = 16
    workers: int = 0
    audio: AudioConfig = field(default_factory=AudioConfig)
    capp: CappConfig = field(default_factory=CappConfig)
    instruments: InstrumentsConfig = field(default_factory=InstrumentsConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Short stable hash of every number in the preset: checkpoints record it to catch mismatches."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke",
        description="CI: tiny data and models, seconds per notebook",
        world=WorldConfig(size=64, n_train_actors=6, n_val_actors=2, n_test_actors=2, clips_per_actor=1,
                          min_words=3, max_words=6, languages=("en", "es", "de")),
        batch_size=8,
        audio=AudioConfig(width=32, layers=2, heads=2, ffn=64, context=16, steps=60, batch_size=8, window=32),
        capp=CappConfig(width=32, code=4, heads=2, pose_layers=6, audio_layers=1, window=14, max_shift=4,
                        steps=100, batch_size=8),
        instruments=InstrumentsConfig(
            sync=SyncNetConfig(crop_h=16, crop_w=32, width=8, embed=32, max_offset=6, steps=30, batch_size=8),
            attributes=AttributesConfig(size=32, face_size=32, locator_width=8, width=8, steps=30, batch_size=8),
            fvd=FVDConfig(size=32, frames=16, width=8, features=32, steps=20, batch_size=4),
            identity=IdentityConfig(size=32, width=8, embed=32, steps=30, batch_size=16),
            train_per_actor=4, test_per_actor=4),
        latent=LatentConfig(width=8, vol_channels=4, vol_depth=4, id_dim=16, dyn_dim=16, flow_depth=2,
                            render_width=16, refiner_width=8, per_actor=8, steps=40, batch_size=4, lr=2e-3,
                            dyn_warmup=50),
        # smoke clips are 34-56 frames long: a shorter window so that windows and their history fit in a clip
        motion=MotionConfig(window=24, prev=6, layers=2, width=64, heads=4, ffn=128, steps=200, batch_size=16,
                            lr=2e-3),
    ),
    "cpu": Preset(
        name="cpu",
        description="a laptop CPU: minutes per notebook, 128 px",
        world=WorldConfig(size=128, n_train_actors=320, n_val_actors=20, n_test_actors=40, clips_per_actor=2),
        batch_size=16,
        latent=LatentConfig(refiner_width=16),
        # the generators' length on a 2-core CPU (about 6 min each); the ablation generators train as long
        motion=MotionConfig(steps=3000),
    ),
    "gpu": Preset(
        name="gpu",
        description="Colab T4 or bigger: 256 px, more actors and clips",
        world=WorldConfig(size=256, n_train_actors=1000, n_val_actors=50, n_test_actors=100, clips_per_actor=4),
        batch_size=32,
        workers=2,
        audio=AudioConfig(width=256, layers=6, heads=4, ffn=512, steps=10000, batch_size=32),
        capp=CappConfig(width=128, code=16, steps=10000, batch_size=64),
        latent=LatentConfig(width=32, vol_channels=16, vol_depth=16, id_dim=64, dyn_dim=48, render_width=64,
                            refiner_width=32, per_actor=32, steps=30000, batch_size=16),
        # the paper's motion transformer: 8 layers, width 512, 8 heads
        motion=MotionConfig(layers=8, width=512, heads=8, ffn=2048, steps=60000, batch_size=128, lr=3e-4),
    ),
}


def get_preset(name: "str | Preset") -> Preset:
    """Look a preset up by name; an unknown name is an InputError that lists the accepted ones."""
    if isinstance(name, Preset):
        return name
    try:
        return PRESETS[str(name)]
    except KeyError:
        raise InputError(f"unknown preset '{name}'; choose one of: {', '.join(PRESETS)}") from None
