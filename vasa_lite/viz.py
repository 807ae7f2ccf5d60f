"""Plots and image layouts the notebooks share (matplotlib for figures, plotly for 3D and interactive)."""
from __future__ import annotations

import numpy as np

from vasa_lite.errors import InputError


def as_uint8_hwc(frames) -> np.ndarray:
    """Any frame batch (torch [N,3,H,W] in [0,1], or uint8 [N,H,W,3]) as uint8 [N,H,W,3]."""
    try:
        import torch

        if torch.is_tensor(frames):
            frames = frames.detach().to("cpu")
            if frames.dtype != torch.uint8:
                frames = (frames.clamp(0, 1) * 255).round().byte()
            if frames.ndim == 4 and frames.shape[1] in (1, 3):
                frames = frames.permute(0, 2, 3, 1)
            return frames.numpy()
    except ImportError:
        pass
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        frames = (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)
    return frames


def tile(frames, ncol: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Lay images [N,H,W,3] out in a grid with `ncol` columns: one uint8 image."""
    frames = as_uint8_hwc(frames)
    n, h, w, c = frames.shape
    nrow = -(-n // ncol)
    out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), fill, np.uint8)
    for i, im in enumerate(frames):
        r, q = divmod(i, ncol)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = im
    return out


def tile_videos(clips, ncol: int, pad: int = 2) -> np.ndarray:
    """Several clips side by side as one video [T,H',W',3]; shorter clips hold their last frame."""
    clips = [as_uint8_hwc(c) for c in clips]
    t = max(len(c) for c in clips)
    clips = [np.concatenate([c, np.repeat(c[-1:], t - len(c), 0)]) if len(c) < t else c for c in clips]
    return np.stack([tile(np.stack([c[i] for c in clips]), ncol, pad) for i in range(t)])


def show_grid(images, ncol: int, row_labels=None, col_labels=None, scale: float = 1.6, title=None):
    """A labelled matplotlib grid of images; returns the figure."""
    import matplotlib.pyplot as plt

    images = as_uint8_hwc(images)
    nrow = -(-len(images) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(scale * ncol, scale * nrow), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
        if i < len(images):
            ax.imshow(images[i])
        r, q = divmod(i, ncol)
        if col_labels is not None and r == 0 and q < len(col_labels):
            ax.set_title(str(col_labels[q]), fontsize=9)
        if row_labels is not None and q == 0 and r < len(row_labels):
            ax.set_ylabel(str(row_labels[r]), fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_speech(speech, tracks=None, max_labels: int = 80):
    """Waveform, log-mel spectrogram with the phoneme labels at their times, and the viseme tracks below:
    the ground truth a lip-sync model must learn, on one time axis in seconds."""
    import librosa
    import librosa.display
    import matplotlib.pyplot as plt

    from vasa_lite.world.speech import viseme_tracks

    tracks = tracks or viseme_tracks(speech)
    sr = speech.sample_rate
    t = np.arange(len(speech.audio)) / sr
    fig, axes = plt.subplots(3, 1, figsize=(12, 7), sharex=True, gridspec_kw={"height_ratios": [1, 2, 1.4]})
    axes[0].plot(t, speech.audio, lw=0.5, color="#345")
    axes[0].set_ylabel("amplitude")
    mel = librosa.feature.melspectrogram(y=speech.audio, sr=sr, n_fft=512, hop_length=160, n_mels=80)
    librosa.display.specshow(librosa.power_to_db(mel, ref=np.max), sr=sr, hop_length=160, x_axis="time",
                             y_axis="mel", ax=axes[1], cmap="magma")
    axes[1].set_ylabel("mel (Hz)")
    for start, end, ph in speech.phonemes[:max_labels]:
        axes[1].axvline(start, color="w", lw=0.4, alpha=0.5)
        axes[1].text((start + end) / 2, 6500, ph, color="w", ha="center", fontsize=8)
    ft = (np.arange(len(tracks["jaw"])) + 0.5) / 25
    for key, col in (("jaw", "C0"), ("lip_round", "C1"), ("lip_close", "C2")):
        axes[2].plot(ft, tracks[key], label=key, color=col)
    axes[2].set_ylabel("viseme track")
    axes[2].set_xlabel("time (s)")
    axes[2].legend(loc="upper right", fontsize=8, ncol=3)
    fig.tight_layout()
    return fig


def pose_trajectory_3d(tracks, title: str = "head pose over time"):
    """Plotly 3D line of (yaw, pitch, roll) in degrees, coloured by time in seconds."""
    import plotly.graph_objects as go

    yaw, pitch, roll = (np.asarray(tracks[k]) for k in ("yaw", "pitch", "roll"))
    t = np.arange(len(yaw)) / 25
    fig = go.Figure(go.Scatter3d(x=yaw, y=pitch, z=roll, mode="lines+markers",
                                 marker=dict(size=2, color=t, colorscale="Viridis", colorbar=dict(title="s")),
                                 line=dict(color="#888", width=2)))
    fig.update_layout(title=title, height=450, margin=dict(l=0, r=0, t=40, b=0),
                      scene=dict(xaxis_title="yaw (deg)", yaxis_title="pitch (deg)", zaxis_title="roll (deg)"))
    return fig


def sampling_animation(timesteps, x_t, x0_hat, fps: float = 25.0, label: str = "yaw (degrees)",
                       title: str = "reverse diffusion, step by step"):
    """Plotly animation of one sampled window: per step k, the noisy X_t (grey) and the network's x0_hat (blue) of
    one motion channel over the window's frames, with a play button and a step slider.

    timesteps: the sampler's timesteps [K]; x_t, x0_hat: [K, W] (that channel, in its units, e.g. degrees)."""
    import plotly.graph_objects as go

    x_t, x0_hat = np.asarray(x_t, np.float64), np.asarray(x0_hat, np.float64)
    if x_t.shape != x0_hat.shape or x_t.ndim != 2 or len(timesteps) != len(x_t):
        raise InputError(f"sampling_animation wants K timesteps and two [K, W] arrays (one motion channel per step), "
                         f"got {len(timesteps)} timesteps and arrays {x_t.shape}, {x0_hat.shape}")
    sec = np.arange(x_t.shape[1]) / fps
    # the axis holds the final motion with room around it: the first steps' X_t is mostly noise and runs off it
    lo, hi = float(x0_hat.min()), float(x0_hat.max())
    pad = 0.5 * (hi - lo) + 1e-6

    def traces(k):
        return [go.Scatter(x=sec, y=x_t[k], mode="lines", line=dict(color="#aaa", width=1), name="X_t"),
                go.Scatter(x=sec, y=x0_hat[k], mode="lines", line=dict(color="#1f77b4", width=2.5), name="x0_hat")]

    names = [f"{k + 1}" for k in range(len(x_t))]
    frames = [go.Frame(data=traces(k), name=n, layout=go.Layout(title=f"{title}: step {n}/{len(x_t)}, t = {timesteps[k]}"))
              for k, n in enumerate(names)]
    slider = dict(active=0, currentvalue=dict(prefix="step "), pad=dict(t=40),
                  steps=[dict(label=n, method="animate", args=[[n], dict(mode="immediate", frame=dict(duration=0,
                                                                                                     redraw=False))])
                         for n in names])
    play = dict(type="buttons", showactive=False, x=0, y=-0.18, xanchor="left",
                buttons=[dict(label="play", method="animate",
                              args=[None, dict(frame=dict(duration=120, redraw=False), fromcurrent=True)]),
                         dict(label="pause", method="animate",
                              args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False))])])
    fig = go.Figure(data=traces(0), frames=frames)
    fig.update_layout(title=f"{title}: step 1/{len(x_t)}, t = {timesteps[0]}", height=420, sliders=[slider],
                      updatemenus=[play], xaxis_title="time in the window (s)", yaxis_title=label,
                      yaxis_range=[lo - pad, hi + pad], margin=dict(l=50, r=20, t=50, b=90))
    return fig
