"""The motion generator's network H(X_t, t, C): a transformer encoder over one sequence that puts the conditions
and the noisy motion side by side along time, and predicts the clean motion x0 of the window.

Tokens, in order (VASA-1 concatenates the conditions with the noisy input along time):

    [ t | gaze | distance | emotion | prev_1 .. prev_P | x_1 .. x_W ]

- t: the diffusion timestep, embedded (sinusoid, then an MLP) as one more token. The other ways are adaLN (DiT)
  or adding it to every token; a token treats the timestep like every other condition (one mechanism, as the
  paper's "concatenated along time"), as MDM (Tevet et al. 2023), a motion diffusion transformer that also
  predicts x0, does.
- gaze (2 angles), distance, emotion (5 averaged emotion probabilities): each a linear projection to one token.
- prev_1 .. prev_P: the last P motion frames of the previous window, each plus its audio feature.
- x_1 .. x_W: the window's noisy motion frames X_t, each plus its audio feature.
The audio features are projected to the token width per frame, or with cfg.audio_context = k > 0 by a 1-D
convolution over the previous frames, the window and the k frames after it (a lookahead) that lets each frame hear
k frames either side (the jaw leads the sound a little; attention could gather that context too, but at high noise
the window's tokens carry mostly noise).
Every token also gets a learned position embedding (which tells condition tokens apart, too).

Dropped conditions (classifier-free guidance): each condition has a learned "empty" embedding that replaces its
token (gaze, distance, emotion), its per-frame audio term (audio), or the whole previous-window tokens (prev).
Dropping is per sample, through boolean masks in `cond["drop"]`, so conditional and unconditional predictions can
share one batch (guidance.guided_x0). Truncated audio (the window's final frames cut) uses the audio's empty
embedding on the cut frames only.

With cfg.x0_skip the prediction is x0_hat = sqrt(abar_t) X_t + sqrt(1 - abar_t) F(X_t, t, C): the network F adds to a
skip from X_t (the optimal guess for unit-variance data with F = 0), so at low noise it need not carry X_t through
its layers (Karras et al. 2022's preconditioning; F's target is then minus the v of v-prediction). Off by default
(the paper's x0 = F); the checkpoint records which one it is.

`regression=True` is the baseline without diffusion: no timestep token, and the window's tokens carry a learned
query vector instead of noisy frames; the network maps the conditions straight to the motion.

The network works on normalised motion (per-dimension mean and std of the training set, kept as buffers so a
checkpoint needs no data to generate) and on controls in world units, scaled here.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vasa_lite.errors import InputError
from vasa_lite.motion.schedule import NoiseSchedule
from vasa_lite.world.params import EMOTIONS, FACTORS

CONDITIONS = ("audio", "gaze", "distance", "emotion")    # the conditions guidance can scale
DROPPABLE = CONDITIONS + ("prev",)                        # prev: previous-window motion and audio, together
GAZE_SCALE = (FACTORS["gaze_yaw"].high, FACTORS["gaze_pitch"].high)   # degrees -> about [-1, 1]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [B, dim] of integer timesteps [B] (as in DDPM and the transformer)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], -1)
    return F.pad(emb, (0, dim % 2))

def lookahead(cfg) -> int:
    """Audio frames after its window that a network hears: audio_context with audio_lookahead, else 0."""
    return int(cfg.audio_context) if cfg.audio_lookahead else 0


class MotionTransformer(nn.Module):
    """H(X_t, t, C) -> x0_hat [B, W, motion_dim] (or, with regression=True, H(C) -> motion).

    cfg: a MotionConfig (window W, prev P, layers, width, heads, ffn, dropout); motion_dim: 6 + dyn_dim (z_pose and
    z_dyn); audio_dim: the audio encoder's feature width."""

    def __init__(self, cfg, motion_dim: int, audio_dim: int, regression: bool = False):
        super().__init__()
        if cfg.width % cfg.heads:
            raise InputError(f"motion width {cfg.width} must be divisible by heads {cfg.heads}")
        if not 0 < cfg.prev <= cfg.window:
            raise InputError(f"motion prev ({cfg.prev}) must be in [1, window = {cfg.window}]")
        self.cfg, self.regression = cfg, bool(regression)
        self.motion_dim, self.audio_dim = int(motion_dim), int(audio_dim)
        d = cfg.width
        self.n_cond = 3 if self.regression else 4                # [t] gaze distance emotion
        self.motion_in = nn.Linear(motion_dim, d)
        k = int(cfg.audio_context)
        if k < 0:
            raise InputError(f"motion audio_context must be >= 0 frames, got {k}")
        # per-frame features -> token width; with context, each frame's projection also sees k frames either side
        self.audio_in = nn.Linear(audio_dim, d) if k == 0 else _AudioContext(audio_dim, d, k)
        self.gaze_in = nn.Linear(2, d)
        self.distance_in = nn.Linear(1, d)
        self.emotion_in = nn.Linear(len(EMOTIONS), d)
        # learned "empty" embeddings, one per droppable condition (the paper's c = empty)
        self.empty = nn.ParameterDict({c: nn.Parameter(torch.randn(d) * 0.02) for c in DROPPABLE})
        if self.regression:
            self.query = nn.Parameter(torch.randn(d) * 0.02)     # what the window's tokens carry instead of X_t
        else:
            self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.x0_skip = bool(cfg.x0_skip) and not self.regression
        if self.x0_skip:                                          # abar_t of the training schedule, for the skip
            self.register_buffer("abar", NoiseSchedule(cfg.diffusion_steps, cfg.schedule).alphas_cumprod.clone(),
                                 persistent=False)
        self.pos = nn.Parameter(torch.randn(self.n_cond + cfg.prev + cfg.window, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, cfg.heads, cfg.ffn, cfg.dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, motion_dim)
        # normalisation statistics, set from the training set (data.motion_stats) and saved with the weights
        self.register_buffer("motion_mean", torch.zeros(motion_dim))
        self.register_buffer("motion_std", torch.ones(motion_dim))
        self.register_buffer("distance_mean", torch.tensor(FACTORS["distance"].default))
        self.register_buffer("distance_std", torch.tensor(0.1))

    # ------------------------------------------------------------------------------------ normalisation
    def set_stats(self, stats: dict) -> None:
        """Copy {"mean", "std", "distance_mean", "distance_std"} (data.motion_stats) into the buffers."""
        self.motion_mean.copy_(torch.as_tensor(stats["mean"], dtype=torch.float32))
        self.motion_std.copy_(torch.as_tensor(stats["std"], dtype=torch.float32))
        self.distance_mean.fill_(float(stats["distance_mean"]))
        self.distance_std.fill_(float(stats["distance_std"]))

    def normalise(self, motion: torch.Tensor) -> torch.Tensor:
        return (motion - self.motion_mean) / self.motion_std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.motion_std + self.motion_mean

    # ------------------------------------------------------------------------------------------ forward
    @staticmethod
    def _drop(cond: dict, name: str, b: int, device) -> torch.Tensor:
        """[B, 1] float: 1 where the condition is dropped (missing inputs count as dropped for every row)."""
        m = (cond.get("drop") or {}).get(name)
        m = torch.zeros(b, dtype=torch.bool, device=device) if m is None else m.to(device).bool()
        return m.float()[:, None]

    def _audio_terms(self, audio, keep: torch.Tensor, prev_audio, prev_keep: torch.Tensor, d: int, b: int,
                     device, next_audio=None) -> tuple:
        """Per-frame audio contributions ([B, W, d] for the window, [B, P, d] or None for the previous frames):
        projected features where kept, the window's empty embedding where dropped or cut. Dropped or cut frames are
        zeroed before the projection, so a context projection (audio_context = k > 0) does not see them; it runs
        over the previous frames, the window and the k frames after it (next_audio [B, <=k, Da], the lookahead) as
        one sequence, so the window's first frames hear the audio before it and its last frames the audio after it
        (the lookahead counts only where the window's last frame is kept: a cut window has no future)."""
        W, P = self.cfg.window, self.cfg.prev
        keep3 = keep[..., None]
        if audio is None or isinstance(self.audio_in, nn.Linear):
            win = self.audio_in(audio * keep3) if audio is not None else 0.0
            prev = self.audio_in(prev_audio) if prev_audio is not None else None
        else:
            pa = (prev_audio * prev_keep[..., None] if prev_audio is not None
                  else torch.zeros(b, P, audio.shape[-1], device=device))
            seq = [pa, audio * keep3]
            if next_audio is not None and lookahead(self.cfg):     # a network trained without it ignores it
                seq.append(next_audio.to(device).float()[:, :self.audio_in.k] * keep3[:, -1:])
            both = self.audio_in(torch.cat(seq, 1))
            win, prev = both[:, P:P + W], (both[:, :P] if prev_audio is not None else None)
        win = keep3 * win + (1 - keep3) * self.empty["audio"].expand(b, W, d)
        return win, prev

    def forward(self, x_t: "torch.Tensor | None", t: "torch.Tensor | None", cond: dict) -> torch.Tensor:
        """x_t [B, W, M] normalised noisy motion (None with regression), t [B] timesteps (None with regression),
        cond: {"audio" [B, W, Da], "audio_len" [B] (frames of audio present, default W), "prev_motion" [B, P, M]
        (normalised), "prev_audio" [B, P, Da], "gaze" [B, 2] degrees, "distance" [B], "emotion" [B, 5] probabilities,
        "drop": {condition: bool [B]}, and with audio_context = k > 0 optionally "next_audio" [B, <=k, Da], the audio
        after the window (zeros where absent)}. A missing input is treated as dropped. Returns x0_hat [B, W, M]."""
        cfg, d = self.cfg, self.cfg.width
        W, P = cfg.window, cfg.prev
        ref = x_t if x_t is not None else next(v for v in (cond.get("audio"), cond.get("gaze")) if v is not None)
        b, dev = ref.shape[0], ref.device
        drop = {c: self._drop(cond, c, b, dev) for c in DROPPABLE}
        for c in ("gaze", "distance", "emotion"):
            if cond.get(c) is None:
                drop[c] = torch.ones_like(drop[c])
        if cond.get("audio") is None:
            drop["audio"] = torch.ones_like(drop["audio"])
        if cond.get("prev_motion") is None:
            drop["prev"] = torch.ones_like(drop["prev"])

        def token(name, value, proj):                           # one condition -> one token [B, 1, d]
            if value is None:
                return self.empty[name].expand(b, 1, d)
            e = proj(value.to(dev).float().view(b, -1))
            return ((1 - drop[name]) * e + drop[name] * self.empty[name])[:, None]

        gaze = cond.get("gaze")
        gaze = gaze / torch.tensor(GAZE_SCALE, device=dev) if gaze is not None else None
        dist = cond.get("distance")
        dist = (dist.view(b, 1) - self.distance_mean) / self.distance_std if dist is not None else None
        tokens = [token("gaze", gaze, self.gaze_in), token("distance", dist, self.distance_in),
                  token("emotion", cond.get("emotion"), self.emotion_in)]
        if not self.regression:
            tokens.insert(0, self.time_mlp(timestep_embedding(t.to(dev), d))[:, None])

        # the window: X_t (or the query) plus its audio, cut after audio_len frames and empty where dropped
        audio_len = cond.get("audio_len")
        frame = torch.arange(W, device=dev)[None]
        present = (frame < audio_len.to(dev).view(b, 1)).float() if audio_len is not None else torch.ones(b, W,
                                                                                                         device=dev)
        keep = present * (1 - drop["audio"])
        pm, pa = cond.get("prev_motion"), cond.get("prev_audio")
        pa = pa.to(dev).float() if pa is not None and pm is not None else None
        audio = cond.get("audio")
        a_win, a_prev = self._audio_terms(audio.to(dev).float() if audio is not None else None, keep, pa,
                                          1 - drop["prev"], d, b, dev, cond.get("next_audio"))
        win = self.query.expand(b, W, d) if self.regression else self.motion_in(x_t)
        win = win + a_win

        # the previous window's last P frames: motion plus audio, or the empty embedding when dropped
        if pm is not None:
            prev = self.motion_in(pm.to(dev).float())
            prev = prev + (a_prev if a_prev is not None else self.empty["audio"])
            dp = drop["prev"][..., None]
            prev = (1 - dp) * prev + dp * self.empty["prev"]
        else:
            prev = self.empty["prev"].expand(b, P, d)

        h = torch.cat(tokens + [prev, win], 1) + self.pos
        h = self.encoder(h)
        f = self.out(self.norm(h[:, -W:]))
        if not self.x0_skip:
            return f
        ab = self.abar[t.to(dev).long()].view(b, 1, 1)
        return ab.sqrt() * x_t + (1 - ab).sqrt() * f


class _AudioContext(nn.Module):
    """[B, T, Da] -> [B, T, d]: a 1-D convolution over time of width 2k + 1, zero-padded at the ends (the audio
    projection of MotionConfig.audio_context = k). Zero frames count as absent audio: dropped, cut, or past the
    lookahead."""

    def __init__(self, audio_dim: int, d: int, k: int):
        super().__init__()
        self.k = int(k)
        self.conv = nn.Conv1d(audio_dim, d, 2 * k + 1, padding=k)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.conv(audio.transpose(1, 2)).transpose(1, 2)


def motion_dim(preset) -> int:
    """Size of a motion frame [z_pose, z_dyn] for a preset: 6 + dyn_dim."""
    from vasa_lite.config import get_preset

    return 6 + get_preset(preset).latent.dyn_dim


def build_network(preset, regression: bool = False, audio_dim: "int | None" = None,
                  x0_skip: "bool | None" = None, recorded: "dict | None" = None) -> MotionTransformer:
    """An untrained network of the preset's shape (audio_dim: default the audio encoder's width; x0_skip: default
    the preset's). recorded: MotionConfig settings that replace the preset's (a checkpoint's own size, train.RECORDED)."""
    import dataclasses

    from vasa_lite.config import get_preset

    p = get_preset(preset)
    changes = dict(recorded or {})
    if x0_skip is not None:
        changes["x0_skip"] = bool(x0_skip)
    cfg = dataclasses.replace(p.motion, **changes)
    return MotionTransformer(cfg, motion_dim(p), int(audio_dim or p.audio.width), regression=regression)


__all__ = ["MotionTransformer", "CONDITIONS", "DROPPABLE", "build_network", "motion_dim", "timestep_embedding",
           "lookahead"]
