"""The face latent space (notebook 02): V_app, z_id, z_pose, z_dyn, and a decoder that puts them back together."""
from vasa_lite.latent.model import FaceLatentModel, checkpoint_file, load_latent, parameter_count

__all__ = ["FaceLatentModel", "checkpoint_file", "load_latent", "parameter_count"]
