"""The configuration's schema: one dataclass per section, each number with the interval of its values.

The sections are ``data``, ``model``, ``loss``, ``optim`` and ``train`` of :class:`Config`; loading,
merging and validating them is :mod:`phanet.config.loading`'s. :meth:`ModelConfig.arguments` is the one
place where a config becomes the keyword arguments of a network (:func:`phanet.models.create_model`).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

from phanet.checks import shorten
from phanet.models.info import SCALE_NAMES

#: Loss settings of Table VIII.
LOSS_SETTINGS = ("e", "att_e", "p_e", "att_e_p", "multi")
#: The settings with a pose loss L(p); the others train (and report) no pose.
POSE_LOSS_SETTINGS = ("p_e", "att_e_p", "multi")


#: Seeds go to NumPy and PyTorch, which take 0 <= seed < 2**32.
MAX_SEED = 2**32 - 1


def show(value: Any) -> str:
    """A user's value as an error message quotes it: ``repr(value)``, shortened; a list or mapping by
    its first items only, so that a huge one is never written out whole."""
    return shorten(_brief(value))


def _brief(value: Any, depth: int = 0) -> str:
    """``repr(value)`` of at most 8 items per list or mapping, 3 levels deep, and 1,000 characters of text."""
    if isinstance(value, dict):
        if depth > 2:
            return "{…}"
        items = [f"{_brief(k, depth + 1)}: {_brief(v, depth + 1)}" for k, v in itertools.islice(value.items(), 8)]
        return "{" + ", ".join(items) + (", …" if len(value) > 8 else "") + "}"
    if isinstance(value, (list, tuple)):
        if depth > 2:
            return "[…]"
        text = ", ".join(_brief(v, depth + 1) for v in value[:8]) + (", …" if len(value) > 8 else "")
        return f"[{text}]" if isinstance(value, list) else f"({text}{',' if len(value) == 1 else ''})"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    return repr(value[:1000] if isinstance(value, str) else value)


def _choices(*values: str, default: str) -> Any:
    return field(default=default, metadata={"choices": values})


@dataclass(frozen=True)
class Interval:
    """The values a number may take, written like ``[1, 4096]`` or ``(0, 1)``; every config number has one.

    An open bound at ``inf`` admits every finite number. The finite upper bounds of sizes and counts
    lie far beyond any useful value: they turn a typo (an extra few digits) into a message instead of
    a network or a run that cannot fit the machine.
    """

    low: float
    high: float
    low_closed: bool
    high_closed: bool

    @classmethod
    def parse(cls, text: str) -> Interval:
        low, high = text[1:-1].split(",")
        return cls(float(low), float(high), text[0] == "[", text[-1] == "]")

    def __contains__(self, value: float) -> bool:
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below

    def describe(self, integer: bool) -> str:
        def number(x: float) -> str:
            return str(int(x)) if x.is_integer() else f"{x:g}"

        kind = "an integer" if integer else "a number"
        if self.low_closed and self.high_closed:
            return f"{kind} from {number(self.low)} to {number(self.high)}"
        return (
            f"{kind} in {'[' if self.low_closed else '('}{number(self.low)}, "
            f"{number(self.high)}{']' if self.high_closed else ')'}"
        )


def _range(default: Any, interval: str) -> Any:
    """A numeric field with its allowed values (a list field: of each item). ``default`` may be a factory."""
    metadata = {"range": Interval.parse(interval)}
    if callable(default):
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class BackboneConfig:
    """DenseNet backbone (Eq. 1), one per scale."""

    #: Total depth L = 3n + 4, n layers in each of the three dense blocks (DenseNet-40: 40).
    depth: int = _range(40, "[4, 1000]")
    #: k, the feature maps each layer adds.
    growth_rate: int = _range(12, "[1, 4096]")
    #: Output channels of the stem convolution.
    init_channels: int = _range(16, "[1, 4096]")
    #: ``imagenet``: a 7x7 stride-2 convolution (the paper's "7x7 first layer"); ``cifar``: 3x3, stride 1.
    stem: str = _choices("imagenet", "cifar", default="imagenet")
    #: A 3x3 max-pool after the ``imagenet`` stem.
    stem_pool: bool = True
    #: Dropout after each dense layer.
    dropout: float = _range(0.0, "[0, 1)")
    #: Recompute the dense layers in the backward pass (gradient checkpointing): slower, far less memory.
    memory_efficient: bool = False


@dataclass
class AttentionConfig:
    """Pixel attention network Υ (Eq. 2) and crop-and-zoom (Eq. 5)."""

    #: Units of the PAN's first fully connected layer.
    hidden: int = _range(128, "[1, 65536]")
    #: Side the coarser map is average-pooled to before the PAN's fully connected layers.
    grid: int = _range(7, "[1, 64]")
    #: Smallest side of a square, as a fraction of the image it is cut from.
    side_min: float = _range(0.3, "(0, 1]")
    #: Largest side of a square, as a fraction of the image it is cut from.
    side_max: float = _range(0.6, "(0, 1]")
    #: ``affine``: crop-and-zoom by exact bilinear sampling; ``boxcar``: the paper's mask of steep sigmoids (Eq. 5).
    crop: str = _choices("affine", "boxcar", default="affine")
    #: Steepness of the ``boxcar`` mask's sigmoids.
    mask_steepness: float = _range(50.0, "(0, inf)")
    #: The PAN reads the coarser scale's map without passing gradient back into that scale's backbone
    #: (the finer scales' losses train the PAN, not the coarser network).
    detach_input: bool = True
    #: Fraction of the training faces whose S3 square (in S2's coordinates) is that of another face of
    #: the batch, its geometry detached: S3's classifier then cannot read the expression from where the
    #: PAN puts the square, only from what it shows. 0: the paper's HPAL.
    swap: float = _range(0.0, "[0, 1]")


@dataclass
class ModelConfig:
    """The network: PhaNet or a baseline, its sizes and its parts."""

    #: The network: ``phanet`` or a baseline of Tables I, V, VII (DenseNet, VGG-19, HOG + 2 FC).
    arch: str = _choices("phanet", "densenet", "vgg19", "hog_fc", default="phanet")
    #: Side in pixels of what each scale's network sees (the paper's 224).
    image_size: int = _range(224, "[32, 4096]")
    #: Side of the images the model receives, a multiple of ``image_size`` (null: ``image_size``); when
    #: larger, S1 sees them pooled to ``image_size`` and S2 and S3 are cut from them at full resolution.
    input_size: int | None = _range(None, "[32, 8192]")
    #: The scales whose features form f, any of N_S1, H_S2, H_S3 (the rows of Table VI).
    scales: list[str] = field(default_factory=lambda: list(SCALE_NAMES))
    #: J_SA: re-weight the scales with joint scale attention, SAL (Eq. 7-8); otherwise f concatenates them.
    joint_sa: bool = True
    #: Units of SAL's bottleneck W_1.
    sal_hidden: int = _range(64, "[1, 65536]")
    #: The gate of Eq. 7: ``literal``, sigmoid(ReLU(z)) as written (c in [0.5, 1)); ``sigmoid``, sigmoid(z).
    sal_form: str = _choices("literal", "sigmoid", default="literal")
    #: Units of the DCML head's fully connected layer (and of the baselines' head).
    head_hidden: int = _range(512, "[1, 65536]")
    #: ``bounded``: λp = sigmoid(.)/2, λe = 1 - λp, so λe >= λp exactly (Eq. 9); ``free``: only λe + λp = 1.
    lambda_form: str = _choices("bounded", "free", default="bounded")
    #: Channel multiplier of the VGG-19 baseline.
    width: float = _range(1.0, "(0, 64]")
    #: The DenseNet of every scale (and of the DenseNet baseline).
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    #: The pixel attention networks and crop-and-zoom.
    attention: AttentionConfig = field(default_factory=AttentionConfig)

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``create_model(self.arch, expressions=..., poses=..., **arguments)``:
        the settings that the architecture ``arch`` takes, nested sections as plain mappings."""
        sizes = {"image_size": self.image_size, "input_size": self.input_size}
        if self.arch == "phanet":
            return {
                **sizes,
                "scales": list(self.scales),
                "joint_sa": self.joint_sa,
                "backbone": dataclasses.asdict(self.backbone),
                "attention": dataclasses.asdict(self.attention),
                "sal_hidden": self.sal_hidden,
                "head_hidden": self.head_hidden,
                "lambda_form": self.lambda_form,
                "sal_form": self.sal_form,
            }
        if self.arch == "densenet":
            return {**sizes, "backbone": dataclasses.asdict(self.backbone)}
        if self.arch == "vgg19":
            return {**sizes, "width": self.width, "hidden": self.head_hidden}
        return {**sizes, "hidden": self.head_hidden}


@dataclass
class LossConfig:
    """Which terms of Eq. 9 are used (Table VIII rows) and their constants."""

    #: The loss of a row of Table VIII: ``e`` L(e), ``att_e`` L_att + L(e), ``p_e`` L(p) + L(e),
    #: ``att_e_p`` L_att + L(e) + L(p), ``multi`` L_Multi (Eq. 9) with the dynamic weights λ.
    setting: str = _choices(*LOSS_SETTINGS, default="multi")
    #: The constraint factor exp(-factor_scale λp (1 - λp)) of Eq. 9 (Fig. 15 compares without it).
    constraint_factor: bool = True
    #: The constant of the constraint factor (the paper's 12).
    factor_scale: float = _range(12.0, "[0, inf)")
    #: Margin of the ranking loss on the true class's probability (Eq. 4, the paper's 0.05).
    margin: float = _range(0.05, "[0, 1]")
    #: Train S1's own classifier with an expression loss too (the scales' losses of L_att start at S2).
    s1_loss: bool = True
    #: Keep each PAN's raw outputs (a_x, a_y, a_l) within ± this bound by a squared penalty on what
    #: exceeds it, so that the square's tanh/sigmoid stays where it has a gradient; null: no bound.
    pan_limit: float | None = _range(None, "(0, inf)")
    #: Keep the batch mean of each SAL pre-activation (z of Eq. 7) within ± this bound by a squared
    #: penalty on what exceeds it, so that the gate stays where it varies with the face instead of
    #: drifting to c = 1, where every face gets the same weight; the spread of z over the faces is not
    #: penalised. null: no bound.
    sal_limit: float | None = _range(None, "(0, inf)")
    #: ``balanced``: every expression cross-entropy weighs a sample by N / (C n_c), the inverse of its
    #: class's share of the training set (:func:`phanet.losses.balanced_class_weights`); ``none``: Eq. 10
    #: as written, every sample alike.
    class_weights: str = _choices("none", "balanced", default="none")


@dataclass
class OptimConfig:
    """The optimiser and the learning-rate schedule."""

    #: ``sgd`` (the paper's), ``adam`` or ``adamw`` (decoupled weight decay).
    name: str = _choices("sgd", "adam", "adamw", default="sgd")
    #: Learning rate (the paper's 0.01).
    lr: float = _range(0.01, "(0, inf)")
    #: SGD's momentum.
    momentum: float = _range(0.9, "[0, 1)")
    #: Nesterov momentum for SGD.
    nesterov: bool = False
    #: Weight decay (L2 for SGD and Adam, decoupled for AdamW).
    weight_decay: float = _range(1e-4, "[0, inf)")
    #: The factor of each learning-rate decay (the paper's 0.1).
    lr_decay: float = _range(0.1, "(0, 1]")
    #: ``multistep``: ×lr_decay at ``milestones``; ``plateau``: ×lr_decay after ``plateau_patience``
    #: epochs without a better validation FER accuracy; ``cosine``: from ``lr`` along half a cosine to
    #: ``lr`` × ``lr_decay`` after ``train.epochs``.
    scheduler: str = _choices("multistep", "plateau", "cosine", default="multistep")
    #: The ``multistep`` decays: fractions of the run (< 1) or epoch numbers (>= 1).
    milestones: list[float] = _range(lambda: [0.5, 0.75], "[0, inf)")
    #: The ``plateau`` schedule's epochs without a better validation FER accuracy before a decay.
    plateau_patience: int = _range(2, "[0, 1e6]")
    #: Learning-rate multipliers per part of the network, e.g. ``{SAL: 0.1}``; the parts are those of
    #: :meth:`phanet.models.phanet.PhaNet.parameter_groups` (S1_backbone, PAN_S2, SAL, head_lambda, ...).
    #: A value replaces the preset's whole mapping (``{}`` clears it); ``optim.part_lr.SAL=1`` sets one part.
    part_lr: dict[str, float] = field(default_factory=dict)


@dataclass
class PanInitConfig:
    """The paper's PAN initialisation: regress each square onto the highest response of the coarser map."""

    #: Run the warm-up and the initialisation (false: joint or alternating training from the first step).
    enabled: bool = True
    #: Epochs that train everything but the PANs (squares at the centre) before the initialisation.
    warmup_epochs: int = _range(1, "[0, 1e6]")
    #: Steps of the initialisation, which move the PANs alone.
    steps: int = _range(50, "[0, 1e9]")
    #: Learning rate of the initialisation's own Adam.
    lr: float = _range(0.01, "(0, inf)")
    #: Hold SAL at its initial c = 0.5 during the warm-up too.
    hold_sal: bool = False


@dataclass
class TrainConfig:
    """The training budget, the schedule and the machine it runs on."""

    #: Epochs at most (the paper's 150).
    epochs: int = _range(150, "[1, 1e6]")
    #: Images per optimisation step (the paper's 32); on several devices, per device.
    batch_size: int = _range(32, "[1, 1e6]")
    #: ``joint``: one loss updates every part; ``alternating`` (RA-CNN): classification steps with the
    #: PANs frozen, then ranking steps that move only the PANs.
    schedule: str = _choices("joint", "alternating", default="joint")
    #: The paper's PAN initialisation, after a warm-up.
    pan_init: PanInitConfig = field(default_factory=PanInitConfig)
    #: Gradient norm clipping (0: off).
    gradient_clip: float = _range(5.0, "[0, inf)")
    #: What the clipping threshold applies to: the norm of the whole network's gradient, or each
    #: part's own (PhaNet's parts, see ``optim.part_lr``), so that one part's large gradient does not
    #: shrink every other part's step.
    gradient_clip_by: str = _choices("network", "part", default="network")
    #: Lightning's accelerator: ``auto``, ``cpu``, ``gpu``, ``cuda``, ``mps``.
    accelerator: str = "auto"
    #: Lightning's devices: ``auto``, a count, or a list of indices.
    devices: str = "auto"
    #: Lightning's strategy: ``auto``, ``ddp``, ``ddp_spawn`` (``fsdp`` and ``deepspeed`` are refused).
    strategy: str = "auto"
    #: Machines of a multi-node run.
    num_nodes: int = _range(1, "[1, 1e6]")
    #: With several processes, batch normalisation with the statistics of the whole batch (every
    #: process's faces) instead of each process's share; on CPUs too (``gloo``), where PyTorch's
    #: ``SyncBatchNorm`` does not run. No effect in one process.
    sync_batchnorm: bool = False
    #: ``auto``: where bfloat16 is fast, PhaNet's backbones in bfloat16 and its squares in 32 bits
    #: (``bf16-backbones``), bfloat16 autocast for the networks without squares; else 32 bits. Or
    #: ``bf16-backbones``, or any of Lightning's precisions (``32-true``, ``bf16-mixed``, ``16-mixed``, ...).
    precision: str = "auto"
    #: Deterministic algorithms (slower; off also lets cuDNN pick the fastest ones).
    deterministic: bool = False
    #: ``torch.compile`` the network for training, with this mode; ``off``: eager.
    compile: str = _choices("off", "default", "reduce-overhead", "max-autotune", default="off")
    #: Channels-last memory layout (null: on GPUs only).
    channels_last: bool | None = None
    #: PyTorch's CPU threads (null: every usable core, fewer while other processes compete for them).
    threads: int | None = _range(None, "[1, 4096]")
    #: Steps between progress-bar updates (and, on a GPU, between checks for a non-finite loss).
    log_every_n_steps: int = _range(10, "[1, 1e9]")
    #: Record gradients, updates, SAL and the PANs every this many steps into ``dynamics.csv`` (0: off).
    dynamics: int = _range(0, "[0, 1e9]")
    #: Exponential moving average of the weights (decay per optimiser step; 0: off). With it, validation,
    #: the best checkpoint and evaluation use the averaged weights; training steps the raw ones
    #: (Lightning's ``EMAWeightAveraging``).
    ema: float = _range(0.0, "[0, 1)")
    #: Stop after this many epochs without a better validation FER accuracy (0: run every epoch);
    #: the best checkpoint is the one evaluated.
    early_stop: int = _range(0, "[0, 1e6]")
    #: The plateau schedule and early stopping count epochs without a better validation FER accuracy
    #: only once it has exceeded chance (the largest expression's share of the validation set) by this
    #: much, a fraction; before that, a network still at chance keeps its learning rate and is not
    #: stopped. null: count from the first epoch.
    chance_margin: float | None = _range(0.05, "[0, 1]")
    #: Stop after this many minutes of training (null: no limit); the best checkpoint so far counts.
    max_minutes: float | None = _range(None, "(0, 1e8]")


@dataclass
class SplitConfig:
    """Subject-independent split: fractions of subjects (< 1) or subject counts (>= 1)."""

    #: Validation subjects: a fraction of them (< 1) or a count (>= 1).
    val: float = _range(0.15, "[0, 1e9]")
    #: Test subjects: a fraction of them (< 1) or a count (>= 1).
    test: float = _range(0.15, "[0, 1e9]")
    #: Seed of the subjects' shuffle.
    seed: int = _range(0, f"[0, {MAX_SEED}]")
    #: The test subjects by name, instead of drawn (e.g. a protocol's fixed list).
    test_subjects: list[str] | None = None


@dataclass
class DataConfig:
    """The dataset, its split into subjects, the augmentation and the loading."""

    #: The dataset adapter: ``synth``, ``bu3dfe``, ``multipie``, ``kdef``, ``affectnet``, ``sfew``,
    #: ``manifest``, ``folder``, ``generic`` (``phanet data list``).
    dataset: str = "synth"
    #: The dataset's folder or manifest (null for the streamed built-in data).
    root: str | None = None
    #: The adapter's own options (``phanet data list`` names them); a value replaces the preset's whole
    #: mapping, ``data.options.KEY=VALUE`` sets one option.
    options: dict[str, Any] = field(default_factory=dict)
    #: The subject-independent split.
    split: SplitConfig = field(default_factory=SplitConfig)
    #: Flip training images horizontally at random, mirroring the yaw label (needs symmetric yaw classes).
    flip: bool = True
    #: Scale training images by 1 ± jitter and shift them by ± jitter of their side, at random.
    jitter: float = _range(0.05, "[0, 0.5)")
    #: Vary each training image's contrast, saturation and brightness by 1 ± colour and each channel by
    #: 1 ± colour/2 (white balance), at random, as photographs vary (0: off).
    colour: float = _range(0.0, "[0, 1)")
    #: Processes loading the data (0: the training process).
    num_workers: int = _range(0, "[0, 1024]")
    #: Keep decoded images in an on-disk cache after the first read.
    cache: bool = True
    #: Where the cache lies (null: ~/.cache/phanet or $PHANET_CACHE).
    cache_dir: str | None = None


@dataclass
class Config:
    """A run: its seed, its folder and the five sections."""

    #: Seed of the training (weights, data order, augmentation).
    seed: int = _range(0, f"[0, {MAX_SEED}]")
    #: The run folder (``--out`` of the commands).
    out: str = "runs/train"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def input_size(self) -> int:
        """Side of the images fed to the model (``model.input_size``, or ``model.image_size``)."""
        return self.model.input_size or self.model.image_size
