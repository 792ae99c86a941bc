"""warp-phys: declare a dynamical system once; get its data and its WARP models."""

import importlib.metadata

from ._config import (
    Data as Data,
    FitConfig as FitConfig,
    Training as Training,
)
from ._compile import CompiledSystem as CompiledSystem, compile_system as compile_system
from ._dataset import Dataset as Dataset
from ._distributions import (
    AbstractDistribution as AbstractDistribution,
    Choice as Choice,
    LogUniform as LogUniform,
    Uniform as Uniform,
)
from ._errors import WarpPhysError as WarpPhysError
from ._noise import AbstractNoise as AbstractNoise, Gaussian as Gaussian
from ._sampling import Sampling as Sampling
from ._options import ConfigError as ConfigError
from ._models import (
    AbstractBaselineConfig as AbstractBaselineConfig,
    AbstractModelConfig as AbstractModelConfig,
    AbstractWARPConfig as AbstractWARPConfig,
    GRUConfig as GRUConfig,
    LSTMConfig as LSTMConfig,
    MODELS as MODELS,
    NeuralCDEConfig as NeuralCDEConfig,
    NeuralODEConfig as NeuralODEConfig,
    WARPConfig as WARPConfig,
    WARPPhysConfig as WARPPhysConfig,
)
from ._normalise import Normaliser as Normaliser
from ._optimiser import (
    OPTIMISERS as OPTIMISERS,
    SGD as SGD,
    AbstractOptimiser as AbstractOptimiser,
    AdaBelief as AdaBelief,
    Adam as Adam,
    AdamW as AdamW,
    Lion as Lion,
    RMSProp as RMSProp,
)
from ._presets import (
    make_config as make_config,
    resolve as resolve,
    resolve_preset as resolve_preset,
)
from ._baselines import (
    make_gru as make_gru,
    make_lstm as make_lstm,
    make_ncde as make_ncde,
    make_node as make_node,
    param_count as param_count,
)
from ._generate import GenerationWarning as GenerationWarning, generate as generate
from ._measured import read_trajectories as read_trajectories
from ._predict import predict as predict
from ._greybox import (
    PhysicsRoot as PhysicsRoot,
    inferred_parameters as inferred_parameters,
    learned_law as learned_law,
    parameter_report as parameter_report,
    physics_root as physics_root,
)
from ._recurrence import linear_unroll as linear_unroll
from ._registry import load_system as load_system, system_files as system_files
from ._run import Run as Run, format_table as format_table
from ._simulate import simulate as simulate
from ._study import study as study
from ._splits import in_box as in_box, sample_draws as sample_draws
from ._system import SPLITS as SPLITS, Measurements as Measurements, System as System
from ._unknown import Unknown as Unknown
from ._identify import InContext as InContext
from ._tasks import (
    AbstractTask as AbstractTask,
    Classify as Classify,
    Forecast as Forecast,
    RepeatCopy as RepeatCopy,
)
from ._train import fit as fit, fit_ensemble as fit_ensemble
from ._warp import WARP as WARP, make_warp as make_warp
from . import analysis as analysis
from ._flow import (
    AbstractFlow as AbstractFlow,
    ClosedFormFlow as ClosedFormFlow,
    LinearFlow as LinearFlow,
    ODEFlow as ODEFlow,
    STIFF_STEPS as STIFF_STEPS,
    StiffnessWarning as StiffnessWarning,
)


try:
    __version__ = importlib.metadata.version("warp-phys")
except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
    __version__ = "0+unknown"
