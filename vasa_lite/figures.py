"""Figures the docs and notebooks share, drawn with matplotlib so they rebuild offline."""
from __future__ import annotations

from pathlib import Path


def _box(ax, xy, w, h, text, color, fontsize=9):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch(xy, w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=color, ec="#333",
                                lw=1.2))
    ax.text(xy[0] + w / 2, xy[1] + h / 2, text, ha="center", va="center", fontsize=fontsize, wrap=True)


def _arrow(ax, a, b, text=None):
    ax.annotate("", xy=b, xytext=a, arrowprops=dict(arrowstyle="-|>", lw=1.4, color="#333"))
    if text:
        ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.12, text, ha="center", fontsize=8, color="#333")


def pipeline_diagram(path: "str | Path | None" = None):
    """VASA-1's two stages: (1) a face latent space learned from video, (2) a diffusion transformer that
    generates z_pose and z_dyn from audio and controls. Returns the figure; saves it when given a path."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 5.2))
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 5.4)
    ax.axis("off")
    blue, green, orange, grey = "#cfe3ff", "#d7f5d3", "#ffe2c2", "#eeeeee"
    ax.text(0.1, 5.15, "Stage 1: face latent space (notebook 02)", fontsize=11, weight="bold")
    _box(ax, (0.1, 3.4), 1.6, 1.2, "portrait\n(one frame)", grey)
    _box(ax, (2.3, 4.1), 2.0, 0.6, "appearance enc.\nV_app (3D volume)", blue, 8)
    _box(ax, (2.3, 3.35), 2.0, 0.6, "identity enc. z_id", blue, 8)
    for y in (4.4, 3.65):
        _arrow(ax, (1.7, 4.0), (2.3, y))
    _box(ax, (8.6, 3.35), 1.9, 1.35, "decoder\nrigid warp (z_pose)\n+ flow (z_dyn, z_id)\n-> 2D render", blue, 8)
    _arrow(ax, (4.3, 4.4), (8.6, 4.3), "fixed for the whole clip")
    _arrow(ax, (4.3, 3.65), (8.6, 3.7))
    _box(ax, (10.9, 3.4), 1.0, 1.2, "video\n25 fps", grey)
    _arrow(ax, (10.5, 4.0), (10.9, 4.0))

    ax.text(0.1, 2.75, "Stage 2: motion diffusion transformer (notebooks 03-05)", fontsize=11, weight="bold")
    _box(ax, (0.1, 1.2), 1.6, 1.1, "speech\n16 kHz", grey)
    _box(ax, (2.3, 1.35), 2.0, 0.8, "audio encoder\n1 feature / frame", green, 8)
    _arrow(ax, (1.7, 1.75), (2.3, 1.75))
    _box(ax, (2.3, 0.2), 2.0, 0.8, "controls: gaze,\ndistance, emotion", orange, 8)
    _box(ax, (5.0, 0.55), 3.0, 1.9, "diffusion transformer H\nwindow of W frames\n+ previous window\npredicts x0 = [z_pose, z_dyn]"
         "\nCFG: (1+sum l_c) H(C) - sum l_c H(C|c=0)", orange, 8)
    _arrow(ax, (4.3, 1.75), (5.0, 1.75))
    _arrow(ax, (4.3, 0.6), (5.0, 0.9))
    _arrow(ax, (8.0, 1.9), (9.5, 3.35))
    ax.text(9.0, 2.5, "z_pose, z_dyn\nper frame", fontsize=8, color="#333")
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig
