"""Speech features for the motion generator: one vector per 25 fps video frame, offline or streaming.

VASA-1 conditions its diffusion transformer on Wav2Vec2 features. Nothing can be downloaded here, so the course
trains its own small encoder on the world's speech:

1. **Log-mel** at 16 kHz: 80 mel bands, a 25 ms window (400 samples) every 10 ms (hop 160). A video frame is
   640 samples, so exactly `MEL_PER_FRAME = 4` mel frames fall in each one. Each mel window is *causal*: mel
   frame i covers samples [160 i - 240, 160 i + 160), so it ends where its hop ends and needs no future audio.
2. **Front-end**: the 4 mel frames of a video frame are flattened into one vector (a stride-4 convolution,
   4 mel frames -> 1 video frame), then one convolution over frames t-1, t, t+1: **40 ms of lookahead**.
3. **Transformer** with a banded attention mask: frame i attends to frames [i - context, i + L]. Only the first
   `lookahead_layers` blocks may look L frames ahead; later blocks are causal, so lookahead does not grow with
   depth. Positions enter as a learned bias per head and relative offset, so the network is shift-invariant
   and a long recording can be cut into overlapping windows with no seam.
   Total lookahead = 1 (conv) + L * lookahead_layers frames; with the defaults 3 frames = **120 ms**.
4. **Objective**: predict each frame's viseme class (`world.speech.VISEME_CLASSES`, the mouth-shape class at
   the frame's centre) with cross-entropy. This is supervised pretraining on the world's phoneme timing, not
   self-supervised learning as in Wav2Vec2: an honest, small stand-in that makes the features carry what the
   lips need. `evaluate_audio` checks that with a linear probe on frozen features against a log-mel baseline.

Offline (`encode`) and streaming (`StreamingAudioEncoder`) share the same mask, so feeding audio 40 ms at a time
gives the same per-frame features as encoding the whole clip (up to float rounding).

Input handling (`prepare_audio`): paths or arrays; stereo is averaged; any sample rate is resampled to 16 kHz;
NaN/Inf, empty and shorter-than-one-frame (40 ms) audio raise InputError. Silence: user-facing calls raise
InputError by default (`media.check_speech`); pass `allow_silence=True` to get the features of silence (the
encoder then predicts "sil"). A recording that is not a multiple of 40 ms is padded with zeros to a whole frame:
T = ceil(n_samples / 640) frames.
"""
from __future__ import annotations

import dataclasses
import functools
import glob
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vasa_lite.errors import InputError
from vasa_lite.world.params import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from vasa_lite.world.speech import VISEME_CLASSES

N_MELS = 80
N_FFT = 400                                  # 25 ms analysis window
HOP = 160                                    # 10 ms between mel frames
MEL_PER_FRAME = SAMPLES_PER_FRAME // HOP     # 4 mel frames per 40 ms video frame
HISTORY = N_FFT - HOP                        # 240 past samples each mel window reaches back beyond its hop
LOG_FLOOR = 1e-6                             # log(power + floor): silence maps to a finite value
_BLOCK = 4096                                # mel frames per numpy block: bounded memory on long audio
REAL_SPEECH_GLOB = "/usr/share/sounds/alsa/*.wav"


def mel_frames_per_video_frame() -> int:
    """4: a video frame lasts 640 samples at 16 kHz (40 ms) and the mel hop is 160 samples (10 ms).

    Video frame k spans samples [640 k, 640 (k + 1)) and owns mel frames 4k .. 4k + 3; mel frame i's window
    is samples [160 i - 240, 160 i + 160), so the mel frames of frame k never need audio after frame k.
    """
    assert SAMPLES_PER_FRAME % HOP == 0
    return MEL_PER_FRAME


def n_video_frames(n_samples: int) -> int:
    """Frames for n_samples of 16 kHz audio: ceil(n / 640), the last partial frame padded with silence."""
    return int(math.ceil(int(n_samples) / SAMPLES_PER_FRAME))


# --------------------------------------------------------------------------------------------- log-mel


@functools.lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)   # [80, 201]


@functools.lru_cache(maxsize=1)
def _window() -> np.ndarray:
    from scipy.signal import get_window

    return get_window("hann", N_FFT, fftbins=True).astype(np.float32)   # librosa's default window


def _mel_power(x: np.ndarray) -> np.ndarray:
    """Mel power of every full hop in x, where x starts with HISTORY samples of past: [(len(x)-240)//160, 80]."""
    n = (len(x) - HISTORY) // HOP
    if n <= 0:
        return np.zeros((0, N_MELS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][:n]
    out = np.empty((n, N_MELS), np.float32)
    w, basis = _window(), _mel_basis()
    for a in range(0, n, _BLOCK):
        spec = np.fft.rfft(frames[a:a + _BLOCK] * w, axis=1)
        out[a:a + _BLOCK] = (spec.real ** 2 + spec.imag ** 2) @ basis.T
    return out


def _check_samples(audio, what: str = "audio") -> np.ndarray:
    x = audio.detach().cpu().numpy() if hasattr(audio, "detach") else audio
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise InputError(f"{what} has shape {x.shape}; give mono 16 kHz samples [N] (prepare_audio converts "
                         "files, stereo and other rates)")
    if not np.all(np.isfinite(x)):
        raise InputError(f"{what} has NaN or Inf samples; give finite samples in [-1, 1]")
    return x


def log_mel(audio) -> np.ndarray:
    """Log-mel features of mono 16 kHz audio: float32 [n_samples // 160, 80], 4 rows per video frame.

    Same numbers as `librosa.feature.melspectrogram(y=pad(audio, (240, 0)), sr=16000, n_fft=400, hop_length=160,
    n_mels=80, center=False)`, then log(power + 1e-6); computed here in blocks so long audio needs little memory.
    """
    x = _check_samples(audio)
    return np.log(_mel_power(np.concatenate([np.zeros(HISTORY, np.float32), x])) + LOG_FLOOR)


def prepare_audio(audio, sr: "int | None" = None, *, check_silence: bool = True) -> np.ndarray:
    """Any speech input as float32 mono 16 kHz samples, or an InputError that says what to fix.

    audio: a file path (anything ffmpeg reads, video included; its own rate is used) or an array/tensor
    [N] or [N, C] / [C, N] at `sr` Hz (default 16000), float in [-1, 1] or int16 PCM.
    Raises InputError for NaN/Inf, empty or shorter than one video frame (40 ms) input, and, when
    check_silence, for silence (RMS below media.SILENCE_FLOOR_DBFS).
    """
    from vasa_lite.media import check_speech, read_audio

    if isinstance(audio, (str, os.PathLike)):
        x = read_audio(audio)
        name = f"audio in {audio}"
    else:
        if sr is not None and (not isinstance(sr, (int, np.integer)) or sr <= 0):
            raise InputError(f"sample rate must be a positive integer in Hz, got {sr!r}")
        x = read_audio(audio, orig_sr=int(sr) if sr else SAMPLE_RATE)
        name = "audio array"
    if len(x) < SAMPLES_PER_FRAME:
        raise InputError(f"{name} is {len(x)} samples ({1000 * len(x) / SAMPLE_RATE:.1f} ms) long, shorter than one "
                         f"video frame (40 ms = {SAMPLES_PER_FRAME} samples at 16 kHz); give at least 40 ms of speech")
    if check_silence:
        check_speech(x, name=name)
    return x


# ------------------------------------------------------------------------------------------------ model


class Block(nn.Module):
    """Pre-norm transformer block whose attention sees frames [i - context, i + lookahead] of frame i.

    The score of query i and key j gets a learned bias per head for the offset j - i (relative positions), so
    the block behaves the same wherever a window starts: what makes streaming and windowed encoding exact.
    """

    def __init__(self, width: int, heads: int, ffn: int, context: int, lookahead: int, dropout: float = 0.0):
        super().__init__()
        if width % heads:
            raise InputError(f"width {width} must be divisible by heads {heads}")
        self.heads, self.context, self.lookahead, self.dropout = heads, context, lookahead, dropout
        self.span = context + lookahead + 1          # keys one query can see
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        # tanh GELU: same curve to 1e-3, and several times cheaper per call on CPU than the erf form
        self.ff = nn.Sequential(nn.Linear(width, ffn), nn.GELU(approximate="tanh"), nn.Dropout(dropout),
                                nn.Linear(ffn, width))
        self.rel = nn.Parameter(torch.zeros(heads, self.span))
        self.drop = nn.Dropout(dropout)

    def band_bias(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        """[heads, nq, nk] additive mask: the relative bias inside the band, -inf outside it."""
        off = k_pos[None, :] - q_pos[:, None]
        inside = (off >= -self.context) & (off <= self.lookahead)
        bias = self.rel[:, (off + self.context).clamp(0, self.span - 1)]
        return bias.masked_fill(~inside, float("-inf"))

    def qkv_heads(self, x: torch.Tensor):
        """x [B, T, D] -> q, k, v [B, heads, T, D / heads]."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        return [z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v)]

    def _local_attention(self, q, k, v, block: int = 64):
        """Banded attention in O(T * (block + span)): queries in blocks of `block` frames, each block against
        the keys its band can reach. Every block sees the same relative offsets, so one bias table serves all."""
        b, h, t, dh = q.shape
        c, la = self.context, self.lookahead
        nb = -(-t // block)
        pad = nb * block - t
        reach = block + c + la                                              # keys one block of queries can see
        q = F.pad(q, (0, 0, 0, pad)).view(b, h, nb, block, dh)
        kw = F.pad(k, (0, 0, c, pad + la)).unfold(2, reach, block)         # [B, H, nb, dh, reach]
        vw = F.pad(v, (0, 0, c, pad + la)).unfold(2, reach, block)
        off = torch.arange(reach, device=q.device)[None] - c - torch.arange(block, device=q.device)[:, None]
        bias = self.rel[:, (off + c).clamp(0, self.span - 1)]              # [H, block, reach]
        k_pos = torch.arange(nb, device=q.device)[:, None] * block - c + torch.arange(reach, device=q.device)[None]
        ok = ((off >= -c) & (off <= la))[None] & ((k_pos >= 0) & (k_pos < t))[:, None, :]      # [nb, block, reach]
        # finite, not -inf: padded queries past the end may see no key, and must not turn into NaN
        scores = torch.einsum("bhnrd,bhndl->bhnrl", q, kw) * dh ** -0.5 + bias[:, None].masked_fill(~ok, -1e9)
        p = F.dropout(scores.softmax(-1), self.dropout, self.training)
        out = torch.einsum("bhnrl,bhndl->bhnrd", p, vw).reshape(b, h, nb * block, dh)
        return out[:, :, :t]

    def finish(self, x: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        """Residual attention output ([B, heads, T, dh]) then the residual MLP; x holds the queries' inputs."""
        b, t, d = x.shape
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.ff(self.ln2(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        q, k, v = self.qkv_heads(x)
        if t <= 2 * self.span:   # short: one dense masked attention is cheapest
            pos = torch.arange(t, device=x.device)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=self.band_bias(pos, pos).to(q.dtype),
                                                 dropout_p=self.dropout if self.training else 0.0)
        else:
            att = self._local_attention(q, k, v)
        return self.finish(x, att)


class AudioEncoder(nn.Module):
    """Log-mel [B, 4T, 80] -> features [B, T, width] (25 fps) and viseme logits [B, T, 15]."""

    def __init__(self, cfg=None):
        super().__init__()
        from vasa_lite.config import AudioConfig

        cfg = cfg or AudioConfig()
        self.cfg = cfg
        d = cfg.width
        self.register_buffer("mel_mean", torch.zeros(N_MELS))
        self.register_buffer("mel_std", torch.ones(N_MELS))
        self.patch = nn.Linear(MEL_PER_FRAME * N_MELS, d)     # 4 mel frames -> 1 video frame (stride-4 conv)
        self.conv = nn.Conv1d(d, d, kernel_size=3, padding=1)  # frames t-1, t, t+1: 40 ms lookahead
        self.blocks = nn.ModuleList(
            Block(d, cfg.heads, cfg.ffn, cfg.context, cfg.lookahead if i < cfg.lookahead_layers else 0, cfg.dropout)
            for i in range(cfg.layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, len(VISEME_CLASSES))

    # -- what a student should know about the receptive field
    @property
    def lookahead_frames(self) -> int:
        """Future video frames a feature depends on: 1 from the conv plus each block's attention lookahead."""
        return 1 + sum(b.lookahead for b in self.blocks)

    @property
    def lookahead_ms(self) -> float:
        return 1000.0 * self.lookahead_frames / FPS

    @property
    def past_frames(self) -> int:
        """Past video frames a feature depends on: the conv's one plus `context` per block."""
        return 1 + sum(b.context for b in self.blocks)

    @property
    def width(self) -> int:
        return self.cfg.width

    def set_mel_stats(self, mel: np.ndarray) -> None:
        """Normalise inputs with the training set's per-band mean and std (saved with the weights)."""
        mel = torch.as_tensor(mel, dtype=torch.float32).reshape(-1, N_MELS)
        self.mel_mean.copy_(mel.mean(0))
        self.mel_std.copy_(mel.std(0).clamp_min(1e-3))

    # -- offline
    def front(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, 4T, 80] log-mel -> h0 [B, T, D]: one vector per video frame, before the temporal conv."""
        b, n, _ = mel.shape
        x = ((mel - self.mel_mean) / self.mel_std).reshape(b, n // MEL_PER_FRAME, MEL_PER_FRAME * N_MELS)
        return F.gelu(self.patch(x), approximate="tanh")

    def temporal(self, h0: torch.Tensor) -> torch.Tensor:
        return h0 + F.gelu(self.conv(h0.transpose(1, 2)).transpose(1, 2), approximate="tanh")

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mel [B, 4T, 80] -> (features [B, T, D], viseme logits [B, T, n_classes])."""
        if mel.ndim != 3 or mel.shape[1] % MEL_PER_FRAME or mel.shape[2] != N_MELS:
            raise InputError(f"AudioEncoder wants log-mel [B, 4T, {N_MELS}], got {tuple(mel.shape)}")
        x = self.temporal(self.front(mel))
        for blk in self.blocks:
            x = blk(x)
        feats = self.ln_f(x)
        return feats, self.head(feats)

    @torch.no_grad()
    def encode_array(self, audio: np.ndarray, chunk_frames: "int | None" = None,
                     return_logits: bool = False):
        """Features [T, D] of 16 kHz mono samples, T = ceil(N / 640), in windows of `chunk_frames` frames.

        Each window is extended by the receptive field (past_frames before, lookahead_frames after) and only
        its middle is kept, so the result equals one pass over the whole sequence while memory stays bounded.
        """
        x = _check_samples(audio)
        t_total = n_video_frames(len(x))
        if t_total == 0:
            raise InputError("audio is empty; give at least 40 ms of speech")
        x = np.pad(x, (0, t_total * SAMPLES_PER_FRAME - len(x)))
        w = int(chunk_frames or self.cfg.chunk_frames)
        dev = next(self.parameters()).device
        was_training = self.training
        self.eval()
        feats, logits = [], []
        for a in range(0, t_total, w):
            b = min(t_total, a + w)
            a0, b0 = max(0, a - self.past_frames), min(t_total, b + self.lookahead_frames)
            s0 = a0 * SAMPLES_PER_FRAME - HISTORY
            seg = x[max(0, s0): b0 * SAMPLES_PER_FRAME]
            if s0 < 0:
                seg = np.concatenate([np.zeros(-s0, np.float32), seg])
            mel = torch.from_numpy(np.log(_mel_power(seg) + LOG_FLOOR)).to(dev)
            f, lg = self(mel[None])
            feats.append(f[0, a - a0: b - a0].cpu())
            logits.append(lg[0, a - a0: b - a0].cpu())
        self.train(was_training)
        feats = torch.cat(feats)
        return (feats, torch.cat(logits)) if return_logits else feats


# --------------------------------------------------------------------------------------------- streaming


class _BlockStream:
    """One block's streaming state: keys and values of the frames the band can still reach, and the queries
    still waiting for their `lookahead` future keys.

    Block's math, written for a few new frames with plain functional calls: per-call overhead, not arithmetic, is
    what a 1-frame step costs on a CPU. In steady state one frame in gives one frame out, and its `span` keys are
    exactly the band, so the bias is the table `rel` itself and no mask is built.
    """

    def __init__(self, blk: Block, dev):
        d = blk.proj.in_features
        self.blk, self.h, self.d, self.dh = blk, blk.heads, d, d // blk.heads
        self.scale, self.la, self.c, self.span = (d // blk.heads) ** -0.5, blk.lookahead, blk.context, blk.span
        self.k = torch.zeros(self.h, 0, self.dh, device=dev)   # keys of positions k0 .. newest
        self.v = torch.zeros(self.h, 0, self.dh, device=dev)
        self.x = torch.zeros(0, d, device=dev)                 # inputs of the waiting queries, positions next ..
        self.q = torch.zeros(self.h, 0, self.dh, device=dev)
        self.k0, self.newest, self.next = 0, -1, 0
        g = lambda m: (m.weight.detach(), m.bias.detach())   # noqa: E731
        self.ln1, self.qkv, self.proj, self.ln2 = g(blk.ln1), g(blk.qkv), g(blk.proj), g(blk.ln2)
        self.ff1, self.ff2 = g(blk.ff[0]), g(blk.ff[3])
        self.rel = blk.rel.detach()[:, None, :]

    def push(self, x: torch.Tensor, final: bool = False) -> torch.Tensor:
        """x [n, D]: the next n positions. Returns the outputs of every query whose keys are now all in
        (with final: of every waiting query, since no more keys will come)."""
        n = len(x)
        if n:
            q, k, v = F.linear(F.layer_norm(x, (self.d,), *self.ln1), *self.qkv).view(n, 3, self.h, self.dh).permute(
                1, 2, 0, 3)                                                          # each [H, n, dh]
            self.k, self.v = torch.cat([self.k, k], 1), torch.cat([self.v, v], 1)
            self.x, self.q = torch.cat([self.x, x]), torch.cat([self.q, q], 1)
            self.newest += n
        r = (self.newest if final else self.newest - self.la) - self.next + 1          # queries ready now
        if r <= 0:
            return x[:0]
        if r == 1 and self.k.shape[1] == self.span and self.next + self.la == self.newest:
            bias = self.rel                                                        # steady state
        else:
            q_pos = torch.arange(self.next, self.next + r, device=x.device)
            bias = self.blk.band_bias(q_pos, torch.arange(self.k0, self.newest + 1, device=x.device)).detach()
        att = torch.baddbmm(bias, self.q[:, :r], self.k.transpose(1, 2), alpha=self.scale).softmax(-1) @ self.v
        y = self.x[:r] + F.linear(att.transpose(0, 1).reshape(r, self.d), *self.proj)
        hid = F.gelu(F.linear(F.layer_norm(y, (self.d,), *self.ln2), *self.ff1), approximate="tanh")
        y = y + F.linear(hid, *self.ff2)
        self.x, self.q, self.next = self.x[r:], self.q[:, r:], self.next + r
        drop = self.next - self.c - self.k0                                        # keys no query can reach now
        if drop > 0:
            self.k, self.v, self.k0 = self.k[:, drop:], self.v[:, drop:], self.k0 + drop
        return y


class StreamingAudioEncoder:
    """Feed 16 kHz samples as they arrive; get each frame's features once its lookahead has arrived.

        stream = StreamingAudioEncoder(model)
        for chunk in chunks_of_640_samples:
            feats = stream.push(chunk)        # [n, D], n = 0 or more frames now final
        feats = stream.flush()                # the last frames (end of speech: nothing more to look ahead to)

    Frame t is returned once audio up to the end of frame t + lookahead_frames is in, i.e. lookahead_ms after its
    end (plus the chunk's own duration). Every stage keeps only what the band mask can still reach: 240 samples
    for the mel window, 2 frames for the conv, `context + lookahead + 1` keys per block: memory is constant.
    A chunk holding several frames goes through each stage as one batch.
    """

    def __init__(self, model: AudioEncoder, return_logits: bool = False):
        self.model = model.eval()
        self.return_logits = return_logits
        d = model.width
        # the conv over frames (t-1, t, t+1) as one matrix on their concatenation
        self._conv = (model.conv.weight.detach().permute(0, 2, 1).reshape(d, 3 * d), model.conv.bias.detach())
        # the input normalisation folded into the patch layer: W (x - m) / s + b = (W / s) x + (b - W m / s)
        mean, std = model.mel_mean.repeat(MEL_PER_FRAME), model.mel_std.repeat(MEL_PER_FRAME)
        w = model.patch.weight.detach()
        self._patch = (w / std, model.patch.bias.detach() - w @ (mean / std))
        self._ln_f = (model.ln_f.weight.detach(), model.ln_f.bias.detach())
        self.reset()

    @property
    def lookahead_ms(self) -> float:
        return self.model.lookahead_ms

    def reset(self) -> None:
        m = self.model
        dev = next(m.parameters()).device
        self._dev = dev
        self._tail = np.zeros(HISTORY, np.float32)       # past samples the next mel window reaches back into
        self._pending = np.zeros(0, np.float32)          # samples not yet making a whole video frame
        self._h0 = torch.zeros(1, m.width, device=dev)   # conv inputs from the position before the next output
        self._blocks = [_BlockStream(b, dev) for b in m.blocks]
        self.samples_in = 0
        self.frames_out = 0

    @torch.no_grad()
    def push(self, chunk) -> torch.Tensor:
        """Add samples (float32 16 kHz mono, any length); returns the features of frames that became final."""
        x = _check_samples(chunk, "audio chunk")
        self.samples_in += len(x)
        x = np.concatenate([self._pending, x])
        n = len(x) // SAMPLES_PER_FRAME
        self._pending = x[n * SAMPLES_PER_FRAME:]
        if n == 0:
            return self._stack(self._h0[:0])
        buf = np.concatenate([self._tail, x[: n * SAMPLES_PER_FRAME]])
        self._tail = buf[-HISTORY:]
        mel = torch.from_numpy(np.log(_mel_power(buf) + LOG_FLOOR).reshape(n, -1)).to(self._dev)
        return self._stack(self._advance(F.gelu(F.linear(mel, *self._patch), approximate="tanh"), final=False))

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """End of the stream: pad the last partial frame with silence, then finish every waiting frame."""
        out = []
        if len(self._pending):
            pad = SAMPLES_PER_FRAME - len(self._pending)
            out.append(self.push(np.zeros(pad, np.float32)))
            self.samples_in -= pad
        out.append(self._stack(self._advance(self._h0[:0], final=True)))
        return torch.cat(out)

    @torch.no_grad()
    def peek(self) -> torch.Tensor:
        """Provisional features of the frames whose lookahead has not arrived yet, as if the speech ended now (the
        truncated audio a first streaming window starts from); the stream itself is left as it was. Only whole
        frames received so far are returned."""
        whole = self.samples_in // SAMPLES_PER_FRAME - self.frames_out
        saved = (dict(self.__dict__), [dict(b.__dict__) for b in self._blocks])
        try:
            out = self.flush()
        finally:
            self.__dict__.update(saved[0])
            for b, state in zip(self._blocks, saved[1]):
                b.__dict__.update(state)
        return out[:max(0, whole)]

    def _stack(self, feats: torch.Tensor) -> torch.Tensor:
        if not len(feats):
            return torch.zeros(0, len(VISEME_CLASSES) if self.return_logits else self.model.width)
        f = F.layer_norm(feats, (self.model.width,), *self._ln_f)
        self.frames_out += len(f)
        return (self.model.head(f) if self.return_logits else f).cpu()

    def _advance(self, h0: torch.Tensor, final: bool) -> torch.Tensor:
        """Run new front-end frames h0 [n, D] through the conv and every block (final: the end of the stream)."""
        started = len(self._h0) > 1 or len(h0) > 0
        buf = torch.cat([self._h0, h0] + ([torch.zeros_like(self._h0[:1])] if final and started else []))
        if len(buf) >= 3:     # conv output s needs s - 1, s, s + 1; the conv's zero padding after the last frame
            y = F.linear(torch.cat([buf[:-2], buf[1:-1], buf[2:]], 1), *self._conv)
            xs = buf[1:-1] + F.gelu(y, approximate="tanh")
            self._h0 = buf[-2:]
        else:
            xs, self._h0 = buf[:0], buf
        for bs in self._blocks:
            xs = bs.push(xs, final)
        return xs


# ------------------------------------------------------------------------------------ loading and encoding


def checkpoint_file(preset="cpu") -> Path:
    from vasa_lite.checkpoints import checkpoint_path
    from vasa_lite.config import get_preset

    return checkpoint_path("audio", get_preset(preset).name)


_CACHE: dict = {}


def load_audio_encoder(preset="cpu", path=None, device=None) -> AudioEncoder:
    """The trained encoder of a preset (data/checkpoints/audio_<preset>.pt by default), in eval mode."""
    from vasa_lite.checkpoints import load_checkpoint
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device
    from vasa_lite.training import check_component_checkpoint

    p = get_preset(preset)
    path = Path(path) if path else checkpoint_file(p)
    dev = pick_device(device)
    key = (str(path.resolve()), path.stat().st_mtime if path.exists() else None, p.name, str(dev))
    if key in _CACHE:
        return _CACHE[key]
    state, meta = load_checkpoint(path, component="audio")
    check_component_checkpoint(meta, p, p.audio, path)
    model = AudioEncoder(p.audio)
    model.load_state_dict(state)
    model = model.to(dev).eval()
    _CACHE.clear()
    _CACHE[key] = model
    return model


def encode(audio, sr: "int | None" = None, model: "AudioEncoder | None" = None, preset="cpu",
           allow_silence: bool = False) -> torch.Tensor:
    """Per-video-frame speech features [T, D], T = ceil(n_samples / 640) at 16 kHz (25 fps).

    audio: a path or an array at `sr` Hz (see prepare_audio). model: an AudioEncoder (default: the shipped
    checkpoint of `preset`). Silent input raises InputError unless allow_silence.
    """
    x = prepare_audio(audio, sr, check_silence=not allow_silence)
    model = model or load_audio_encoder(preset)
    return model.encode_array(x)


def predict_visemes(audio, sr: "int | None" = None, model: "AudioEncoder | None" = None, preset="cpu",
                    allow_silence: bool = True) -> list[tuple[float, float, str]]:
    """The encoder head's viseme reading of speech as runs (start_s, end_s, viseme class)."""
    x = prepare_audio(audio, sr, check_silence=not allow_silence)
    model = model or load_audio_encoder(preset)
    _, logits = model.encode_array(x, return_logits=True)
    ids = logits.argmax(-1).numpy()
    runs, start = [], 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[start]:
            runs.append((start / FPS, i / FPS, VISEME_CLASSES[ids[start]]))
            start = i
    return runs


# ---------------------------------------------------------------------------------------------- training


def _clip_arrays(clips, min_frames: int):
    """Log-mel [4T, 80] and viseme ids [T] per clip, audio padded with silence to at least min_frames."""
    mels, labels = [], []
    for c in clips:
        n = len(c["visemes"])
        t = max(n, min_frames)
        audio = c["audio"][: n * SAMPLES_PER_FRAME]
        mels.append(log_mel(np.pad(audio, (0, t * SAMPLES_PER_FRAME - len(audio)))))
        labels.append(np.pad(c["visemes"].astype(np.int64), (0, t - n)))   # padding is silence: label 0, "sil"
    return mels, labels


def _augment(mel: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random gain (+-12 dB) and a white-noise floor (-85 to -45 dBFS) applied in the mel power domain."""
    b = mel.shape[0]
    gain = 10 ** ((torch.rand(b, 1, 1, generator=gen) * 24 - 12) / 10)
    sigma = 10 ** (torch.rand(b, 1, 1, generator=gen) * 2 - 4.25)                # noise amplitude
    band = torch.from_numpy(_mel_basis().sum(1) * float((_window() ** 2).sum()))  # E|X|^2 per band / sigma^2
    noise = sigma ** 2 * band * -torch.log(torch.rand(mel.shape, generator=gen).clamp_min(1e-6))
    return torch.log((mel.exp() - LOG_FLOOR).clamp_min(0) * gain + noise + LOG_FLOOR)


def train_audio(preset="cpu", seed: int = 0, device=None, steps: "int | None" = None, resume: bool = True,
                out=None, progress: bool = True, root=None) -> dict:
    """Pretrain the audio encoder on the world's train split (viseme classification); returns a summary."""
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device, seed_everything
    from vasa_lite.training import Trainer, load_split

    p = get_preset(preset)
    cfg = p.audio
    seed_everything(seed)
    dev = pick_device(device)
    train = load_split(p, "train", root=root)
    val = load_split(p, "val", root=root)
    if not train:
        raise InputError(f"the '{p.name}' world has no train clips; build it: vasa-lite world build --preset {p.name}")
    mels, labels = _clip_arrays(train, cfg.window)
    model = AudioEncoder(cfg)
    model.set_mel_stats(np.concatenate(mels))
    model.to(dev)
    steps = int(steps or cfg.steps)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    warm = max(1, min(200, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))))
    w = cfg.window

    def step_fn(step, gen):
        from vasa_lite.training import shard

        # the global batch, augmentation included, is drawn alike on every rank from the shared generator (cheap
        # slicing); each rank trains on its shard (under torchrun), so N ranks see what one process would
        idx = torch.randint(len(mels), (cfg.batch_size,), generator=gen).tolist()
        xb, yb = [], []
        for i in idx:
            s = int(torch.randint(len(labels[i]) - w + 1, (1,), generator=gen))
            xb.append(torch.from_numpy(mels[i][s * MEL_PER_FRAME:(s + w) * MEL_PER_FRAME]))
            yb.append(torch.from_numpy(labels[i][s:s + w]))
        x = shard(_augment(torch.stack(xb), gen)).to(dev)
        y = shard(torch.stack(yb)).to(dev)
        _, logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        acc = (logits.argmax(-1) == y).float().mean()
        return {"loss": loss, "acc": acc}

    def eval_fn():
        return {"val_head_acc": head_accuracy(model, val)} if val else {}

    path = Path(out) if out else checkpoint_file(p)
    trainer = Trainer(model, opt, component="audio", preset=p, path=path, scheduler=sched, seed=seed,
                      progress=progress, ckpt_every=max(50, steps // 10),
                      extra={"config": dataclasses.asdict(cfg), "objective": "viseme classification",
                             "lookahead_ms": model.lookahead_ms, "train_clips": len(train)})
    summary = trainer.fit(step_fn, steps, resume=resume, eval_fn=eval_fn)
    summary["parameters"] = sum(p_.numel() for p_ in model.parameters())
    summary["size_mb"] = round(path.stat().st_size / 2**20, 2)
    return summary


# --------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def _features(model: AudioEncoder, clips):
    feats, logits, labels = [], [], []
    for c in clips:
        t = len(c["visemes"])
        f, lg = model.encode_array(c["audio"][: t * SAMPLES_PER_FRAME], return_logits=True)
        feats.append(f[:t].numpy())
        logits.append(lg[:t].numpy())
        labels.append(c["visemes"].astype(np.int64))
    return feats, logits, labels


def head_accuracy(model: AudioEncoder, clips) -> float:
    """Frame accuracy of the encoder's own viseme head on clips."""
    _, logits, labels = _features(model, clips)
    return float(np.mean(np.concatenate(logits).argmax(-1) == np.concatenate(labels)))


def mel_context(mel: np.ndarray, before: int = 0, after: int = 0) -> np.ndarray:
    """Per video frame, its 4 mel frames plus those of `before` past and `after` future frames, flattened."""
    t = len(mel) // MEL_PER_FRAME
    per = mel[: t * MEL_PER_FRAME].reshape(t, MEL_PER_FRAME * N_MELS)
    padded = np.pad(per, ((before, after), (0, 0)), mode="edge")
    return np.concatenate([padded[i: i + t] for i in range(before + after + 1)], axis=1)


def real_speech_report(model: AudioEncoder, pattern: str = REAL_SPEECH_GLOB) -> dict:
    """What the encoder reads from real recordings, if the system has them (ALSA's test voices)."""
    files = sorted(glob.glob(pattern))
    if not files:
        return {"available": False, "searched": pattern}
    rows = []
    for f in files:
        try:
            runs = predict_visemes(f, model=model)
        except InputError as e:
            rows.append({"file": os.path.basename(f), "error": str(e)})
            continue
        n = sum(round((e - s) * FPS) for s, e, _ in runs)
        counts: dict = {}
        for s, e, v in runs:
            counts[v] = counts.get(v, 0) + round((e - s) * FPS)
        rows.append({"file": os.path.basename(f), "seconds": round(n / FPS, 2), "frames": n,
                     "speech_fraction": round(1 - counts.get("sil", 0) / max(n, 1), 3),
                     "viseme_changes_per_s": round(len(runs) / max(n / FPS, 1e-6), 2),
                     "top_visemes": sorted(counts, key=counts.get, reverse=True)[:5]})
    return {"available": True, "files": rows}


def evaluate_audio(model: AudioEncoder, train_clips, test_clips, probe_frames: int = 16000, seed: int = 0,
                   mel_window: bool = True) -> dict:
    """Viseme accuracy on test clips: the encoder's head, a linear probe on its frozen features, log-mel probes.

    Probes are fitted on `probe_frames` random frames of the train clips (all probes on the same frames) and
    tested on every frame of the test clips. mel_window sees the same frames as the encoder's receptive field's
    near part (2 before, lookahead after), so it is the fair "no learning" baseline.
    """
    from vasa_lite.training import linear_probe

    model.eval()
    tr_f, _, tr_y = _features(model, train_clips)
    te_f, te_logits, te_y = _features(model, test_clips)
    y_tr, y_te = np.concatenate(tr_y), np.concatenate(te_y)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(y_tr), size=min(probe_frames, len(y_tr)), replace=False))
    la = model.lookahead_frames
    out = {"n_train_clips": len(train_clips), "n_test_clips": len(test_clips), "n_test_frames": int(len(y_te)),
           "classes": len(VISEME_CLASSES),
           "chance_majority": round(float(np.bincount(y_te, minlength=len(VISEME_CLASSES)).max() / len(y_te)), 4),
           "chance_uniform": round(1 / len(VISEME_CLASSES), 4)}
    head = np.concatenate(te_logits).argmax(-1)
    out["head_acc"] = round(float(np.mean(head == y_te)), 4)
    speech = y_te != 0
    out["head_acc_non_silence"] = round(float(np.mean(head[speech] == y_te[speech])), 4)
    out["probe_acc"] = linear_probe(np.concatenate(tr_f)[pick], y_tr[pick], np.concatenate(te_f), y_te,
                                    len(VISEME_CLASSES))["test_acc"]
    tr_mel = [log_mel(c["audio"][: len(c["visemes"]) * SAMPLES_PER_FRAME]) for c in train_clips]
    te_mel = [log_mel(c["audio"][: len(c["visemes"]) * SAMPLES_PER_FRAME]) for c in test_clips]
    starts = np.cumsum([0] + [len(y) for y in tr_y])
    baselines = {"mel_frame_probe_acc": (0, 0), "mel_window_probe_acc": (2, la)}
    for name, (bef, aft) in list(baselines.items())[: 2 if mel_window else 1]:
        # gather only the picked frames: all train frames with context would need ~0.5 GB
        xtr = np.concatenate([mel_context(m, bef, aft)[pick[(pick >= a) & (pick < b)] - a]
                              for m, a, b in zip(tr_mel, starts[:-1], starts[1:])])
        xte = np.concatenate([mel_context(m, bef, aft) for m in te_mel])
        out[name] = linear_probe(xtr, y_tr[pick], xte, y_te, len(VISEME_CLASSES))["test_acc"]
    if mel_window:
        out["mel_window_frames"] = f"t-2 .. t+{la}"
    return out


def streaming_max_error(model: AudioEncoder, audio: np.ndarray, chunk: int = SAMPLES_PER_FRAME) -> float:
    """Largest |streaming - offline| over every feature of a clip fed `chunk` samples at a time."""
    off = model.encode_array(audio)
    st = StreamingAudioEncoder(model)
    parts = [st.push(audio[i:i + chunk]) for i in range(0, len(audio), chunk)] + [st.flush()]
    on = torch.cat(parts)
    if on.shape != off.shape:
        return float("inf")
    return float((on - off).abs().max())


def eval_audio(preset="cpu", seed: int = 0, device=None, checkpoint=None, limit: "int | None" = None,
               root=None) -> dict:
    """`vasa-lite eval audio`: the JSON report of a trained encoder (see evaluate_audio)."""
    from vasa_lite.checkpoints import load_checkpoint
    from vasa_lite.config import get_preset
    from vasa_lite.training import load_split

    p = get_preset(preset)
    path = Path(checkpoint) if checkpoint else checkpoint_file(p)
    model = load_audio_encoder(p, path=path, device=device)
    _, meta = load_checkpoint(path, component="audio")
    train = load_split(p, "train", limit=limit, root=root)
    test = load_split(p, "test", limit=limit, root=root)
    t0 = time.perf_counter()
    out = {"component": "audio", "preset": p.name, "checkpoint": str(path), "trained_steps": meta["steps"],
           "train_seconds": meta["metrics"].get("train_seconds"), "lookahead_ms": model.lookahead_ms,
           "objective": "per-frame viseme class (15) from the world's phoneme timing",
           **evaluate_audio(model, train, test, seed=seed)}
    out["streaming_max_abs_diff"] = streaming_max_error(model, test[0]["audio"]) if test else None
    out["real_speech"] = real_speech_report(model)
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    return out


# ------------------------------------------------------------------------------------------------- speed


def bench_audio(preset="cpu", seed: int = 0, device=None, frames=None, seconds: float = 30.0) -> dict:
    """Speed of offline and streaming encoding, as x real time (audio seconds per wall second)."""
    from vasa_lite.config import get_preset
    from vasa_lite.device import pick_device
    from vasa_lite.training import load_split

    p = get_preset(preset)
    dev = pick_device(device)
    try:
        model, weights = load_audio_encoder(p, device=dev), "trained"
    except Exception:  # noqa: BLE001 - speed does not depend on the weights
        model, weights = AudioEncoder(p.audio).to(dev).eval(), "untrained (no checkpoint)"
    target = int((frames or seconds * FPS) * SAMPLES_PER_FRAME)
    parts, n = [], 0
    for c in load_split(p, "test"):
        parts.append(c["audio"])
        n += len(c["audio"])
        if n >= target:
            break
    x = np.concatenate(parts)
    while len(x) < target:
        x = np.concatenate([x, x])
    x = x[:target]
    dur = len(x) / SAMPLE_RATE
    log_mel(x[:SAMPLE_RATE])                      # warm-up: librosa's filterbank, torch kernels
    model.encode_array(x[: 5 * SAMPLE_RATE])
    walls = []
    for _ in range(3):
        t0 = time.perf_counter()
        model.encode_array(x)
        walls.append(time.perf_counter() - t0)
    out = {"target": "audio", "preset": p.name, "device": str(dev), "threads": torch.get_num_threads(),
           "weights": weights, "parameters": sum(q.numel() for q in model.parameters()), "audio_s": round(dur, 2),
           "lookahead_ms": model.lookahead_ms, "lookahead_frames": model.lookahead_frames,
           "offline": {"wall_s": round(min(walls), 4), "x_real_time": round(dur / min(walls), 1)}}
    for chunk_ms in (40, 80, 200):
        chunk = SAMPLE_RATE * chunk_ms // 1000
        st = StreamingAudioEncoder(model)
        lat = []
        t0 = time.perf_counter()
        for i in range(0, len(x), chunk):
            t1 = time.perf_counter()
            st.push(x[i:i + chunk])
            lat.append(time.perf_counter() - t1)
        st.flush()
        wall = time.perf_counter() - t0
        out[f"streaming_{chunk_ms}ms"] = {
            "wall_s": round(wall, 4), "x_real_time": round(dur / wall, 1),
            "compute_ms_per_chunk_mean": round(1000 * float(np.mean(lat)), 3),
            "compute_ms_per_chunk_p95": round(1000 * float(np.percentile(lat, 95)), 3),
            # a frame is ready lookahead_ms after it ends, plus the wait for its chunk and the compute
            "latency_ms": round(model.lookahead_ms + chunk_ms + 1000 * float(np.mean(lat)), 1)}
    # the course's target: 100x real time; one 40 ms frame per call is bound by per-call overhead, not arithmetic
    out["meets_100x"] = {k: bool(v["x_real_time"] >= 100) for k, v in out.items()
                         if isinstance(v, dict) and "x_real_time" in v}
    return out


# -------------------------------------------------------------------------------------------------- figure


def plot_alignment(audio=None, n_frames: int = 3, ax=None, lookahead_frames: int = 3):
    """Figure: how 10 ms mel frames line up with 40 ms video frames, and how far the encoder looks ahead.

    Top: the waveform with video-frame boundaries every 640 samples. Middle: each mel frame's 25 ms window
    (causal: it ends where its 10 ms hop ends), coloured by the video frame that owns it, 4 per frame.
    Bottom: the log-mel image on the same time axis. audio: 16 kHz samples (default: a synthetic vowel).
    """
    import matplotlib.pyplot as plt

    k = MEL_PER_FRAME
    n = n_frames * SAMPLES_PER_FRAME
    if audio is None:
        t = np.arange(n + lookahead_frames * SAMPLES_PER_FRAME) / SAMPLE_RATE
        audio = (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 700 * t))
                 * np.clip(np.sin(np.pi * t / t[-1]) * 2, 0, 1)).astype(np.float32)
    audio = _check_samples(audio)[: n + lookahead_frames * SAMPLES_PER_FRAME]
    ms = 1000 / SAMPLE_RATE
    if ax is None:
        fig, axes = plt.subplots(3, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [1.2, 1.5, 1.3]})
    else:
        axes, fig = ax, ax[0].figure
    colours = plt.get_cmap("tab10")
    a0 = axes[0]
    a0.plot(np.arange(len(audio)) * ms, audio, lw=0.6, color="0.3")
    for f in range(n_frames + 1):
        for a in axes:
            a.axvline(f * 40, color="k", lw=1.2, alpha=0.7)
        if f < n_frames:
            a0.text(f * 40 + 20, a0.get_ylim()[1] * 0.85, f"video frame {f}", ha="center", fontsize=9)
    a0.axvspan(n_frames * 40, (n_frames + lookahead_frames) * 40, color="orange", alpha=0.15)
    a0.text((n_frames + lookahead_frames / 2) * 40, 0, f"lookahead {lookahead_frames * 40} ms:\nfeatures of frame "
            f"{n_frames - 1} wait for it", ha="center", va="center", fontsize=8, color="darkorange",
            bbox=dict(facecolor="white", alpha=0.85, edgecolor="none"))
    a0.set_ylabel("16 kHz audio")
    a0.set_title(f"{k} mel frames (10 ms hop, 25 ms causal window) per 40 ms video frame at {FPS} fps")
    a1 = axes[1]
    for i in range(n_frames * k):
        end = (i + 1) * HOP * ms
        a1.barh(i, N_FFT * ms, left=end - N_FFT * ms, height=0.7, color=colours(i // k), alpha=0.35)
        a1.barh(i, HOP * ms, left=end - HOP * ms, height=0.7, color=colours(i // k), alpha=0.9)
    a1.invert_yaxis()
    a1.set_ylabel("mel frame i")
    a1.set_yticks(range(0, n_frames * k, 2))
    mel = log_mel(audio)
    axes[2].imshow(mel.T, origin="lower", aspect="auto", extent=(0, len(mel) * HOP * ms, 0, N_MELS), cmap="magma")
    axes[2].set_ylabel("mel band")
    axes[2].set_xlabel("time (ms)")
    axes[2].set_xlim(-N_FFT * ms / 2, (n_frames + lookahead_frames) * 40)
    fig.tight_layout()
    return fig


__all__ = ["N_MELS", "N_FFT", "HOP", "MEL_PER_FRAME", "mel_frames_per_video_frame", "n_video_frames", "log_mel",
           "prepare_audio", "Block", "AudioEncoder", "StreamingAudioEncoder", "load_audio_encoder", "encode",
           "predict_visemes", "train_audio", "eval_audio", "evaluate_audio", "head_accuracy", "bench_audio",
           "plot_alignment", "mel_context", "streaming_max_error", "real_speech_report", "checkpoint_file"]
