"""The choices a config key may take: the names the schema checks and the code branches on."""

from lego_vae.model.build import VAE, Likelihood

SOURCES = ("synthetic", "ldraw", "folder", "lego_faces")
ARCHS = tuple(VAE.registry)  # one per file of lego_vae/model/archs, in the order of their names
LIKELIHOODS = tuple(Likelihood.registry)  # one per file of lego_vae/model/likelihoods
NORMS = ("batch", "group")  # the conv net's normalisation (model.norm)
PRIORS = ("normal", "gmm")
SCHEDULES = ("exponential", "cosine")
CLIP_ALGORITHMS = ("value", "norm")
# Lightning's accelerators that plain torch runs (tpu and hpu need packages this project does not install)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("auto", "32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true")
PROGRESS = ("auto", "rich", "plain", "none")
MORPH_MODES = ("linear", "slerp")
SAMPLERS = ("botorch", "gp", "tpe", "random")
ACQUISITIONS = ("ei", "logei")
PRUNERS = ("median", "halving", "hyperband", "none")
DESIGNS = ("sobol", "lhs")
REFIT_RULES = ("utopia", "loss", "judged")  # which trial of a two-objective study's front the refit trains
JUDGED = ("val/attr_error", "val/fd_judge")  # a study's second objective: labelled faces, or photos
DEVICES = ("auto", "cpu", "cuda")
# torch.compile modes: reduce-overhead captures CUDA graphs (one launch for a step's kernels, on a GPU)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 1024
