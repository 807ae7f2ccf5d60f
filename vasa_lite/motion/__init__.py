"""The motion generator (notebook 03): a diffusion transformer that turns speech and controls into motion codes
[z_pose, z_dyn] of the face latent space, window by window.

- data: world clips -> motion sequences (rendered, encoded by the latent model, audio features, controls read by
  the attribute estimator), cached;
- network: H(X_t, t, C), the transformer over conditions, previous window and noisy window; the regression baseline;
- schedule: the noise schedule and the DDPM / DDIM samplers;
- guidance: multi-condition classifier-free guidance in one batched pass;
- train: condition dropout, the x0 loss, checkpoints (motion_<preset>.pt, regression_<preset>.pt);
- generate: sliding windows over audio of any length;
- animate: portrait + speech -> talking-face video (also `vasa_lite.animate`), the pose made relative to the portrait;
- evaluate: `eval_motion` (the paper's figures with the course's instruments) and `bench_motion` (frames/s);
- panel: `GenerationPanel`, one portrait and one speech clip regenerated live from the controls (notebook 05's widget).
"""
from vasa_lite.motion.evaluate import bench_motion, eval_motion
from vasa_lite.motion.generate import check_controls, generate_motion
from vasa_lite.motion.guidance import guidance_scales, guided_x0
from vasa_lite.motion.network import CONDITIONS, MotionTransformer, build_network
from vasa_lite.motion.panel import GenerationPanel
from vasa_lite.motion.schedule import DDIMSampler, DDPMSampler, NoiseSchedule
from vasa_lite.motion.train import load_motion, train_motion

__all__ = ["generate_motion", "check_controls", "guidance_scales", "guided_x0", "CONDITIONS", "MotionTransformer",
           "build_network", "DDIMSampler", "DDPMSampler", "NoiseSchedule", "load_motion", "train_motion", "eval_motion",
           "bench_motion", "GenerationPanel"]
