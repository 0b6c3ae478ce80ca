"""Constants shared by the NILM integration's modules."""

from __future__ import annotations

from pathlib import Path
from typing import Final

DOMAIN: Final = "nilm"

CONF_MAINS_ENTITIES: Final = "mains_entities"
CONF_APPLIANCES: Final = "appliances"
CONF_BACKEND: Final = "backend"
CONF_MAX_GAP_S: Final = "max_gap_s"
CONF_THRESHOLD_PREFIX: Final = "threshold_"  # + the appliance (older entries: + the model)
# How the mains is measured (config flow; entries from before it existed: consumption).
CONF_MAINS_TYPE: Final = "mains_type"
CONF_EXPORT_ENTITIES: Final = "export_entities"
CONF_SOLAR_ENTITIES: Final = "solar_entities"
MAINS_CONSUMPTION: Final = "consumption"  # house consumption sensor(s), never negative
MAINS_GRID: Final = "grid"  # signed grid sensor(s): + import, - export
MAINS_IMPORT_EXPORT: Final = "import_export"  # grid import and grid export sensors
MAINS_TYPES: Final = (MAINS_CONSUMPTION, MAINS_GRID, MAINS_IMPORT_EXPORT)

BACKEND_AUTO: Final = "auto"
BACKEND_CPU: Final = "cpu"
BACKEND_CORAL: Final = "coral"
BACKENDS: Final = (BACKEND_AUTO, BACKEND_CPU, BACKEND_CORAL)
# User choice -> engine preferences, tried in order (CPU prefers LiteRT when installed).
ENGINE_PREFERENCES: Final[dict[str, tuple[str, ...]]] = {
    BACKEND_AUTO: ("auto",),
    BACKEND_CPU: ("litert", "numpy"),
    BACKEND_CORAL: ("edgetpu",),
}

DEFAULT_BACKEND: Final = BACKEND_AUTO
# Five minutes: longer than any sane reporting interval of a power meter, far shorter
# than a model window, so a dead meter shows up as "unavailable" quickly.
DEFAULT_MAX_GAP_S: Final = 300.0
MIN_MAX_GAP_S: Final = 30.0
MAX_MAX_GAP_S: Final = 3600.0
# Plausibility bound per mains sensor (one phase): a 100 A breaker at 240 V is 24 kW, so a
# larger reading is a meter glitch or overflow (65,535 W, 4,294,967,295 W) and is treated
# like "unavailable", never as energy. Options key and limits of the setting.
CONF_MAX_POWER_W: Final = "max_power_w"
DEFAULT_MAX_POWER_W: Final = 25_000.0
MIN_MAX_POWER_W: Final = 1_000.0
MAX_MAX_POWER_W: Final = 1_000_000.0

BUNDLED_MODELS_DIR: Final = Path(__file__).parent / "models"
USER_MODELS_SUBDIR: Final = "nilm/models"

# Units the config flow accepts; the runtime converts them to watts.
POWER_UNITS_TO_W: Final[dict[str, float]] = {"W": 1.0, "kW": 1000.0}

# Keep at most this many status predictions to seed min on/off hysteresis on warm start.
WARM_START_MAX_WINDOWS: Final = 240
# Most windows per backend call (warm start, catching up after skipped ticks): a backend
# sizes its activations for the whole batch, so memory stays that of 16 windows.
INFERENCE_CHUNK_WINDOWS: Final = 16
LATENCY_SAMPLES: Final = 500
LAST_ERRORS: Final = 10

# States of the entry's diagnostic "status" sensor (translated in entity.sensor.status).
STATUS_NO_MODELS: Final = "no_models"
STATUS_WAITING_FOR_MAINS: Final = "waiting_for_mains"
STATUS_MODEL_ERROR: Final = "model_error"
STATUS_WARMING_UP: Final = "warming_up"
STATUS_RUNNING: Final = "running"
STATUSES: Final = (
    STATUS_NO_MODELS,
    STATUS_WAITING_FOR_MAINS,
    STATUS_MODEL_ERROR,
    STATUS_WARMING_UP,
    STATUS_RUNNING,
)

ISSUE_MODEL_MISSING: Final = "model_missing"
ISSUE_MODEL_CORRUPT: Final = "model_corrupt"
ISSUE_MODEL_UNSUPPORTED: Final = "model_unsupported"
ISSUE_BACKEND_UNAVAILABLE: Final = "backend_unavailable"

# Repairs about the entry rather than one model (named REPAIR_*: the ISSUE_* names above
# are the per-model repairs, one per configured appliance).
REPAIR_USER_MODEL_REJECTED: Final = "user_model_rejected"  # the bundled model runs instead
REPAIR_USER_MODEL_GONE: Final = "user_model_gone"  # a user model that ran was removed
INSTALLED_STORE_VERSION: Final = 1  # .storage/nilm.<entry id>.installed: user models that ran
REPAIR_MAINS_MISSING: Final = "mains_missing"  # a configured mains sensor is gone
# After Home Assistant has started, how long a configured mains sensor may be absent from
# both the entity registry and the state machine before a repair says it is missing
# (sensors of integrations that set up in the background appear late).
MAINS_MISSING_GRACE_S: Final = 120.0

# Adaptation (issue #15): a smart plug (power sensor) or an on/off entity per appliance
# labels the recorder's history; the model's heads are re-fitted on it (engine/adapter.py).
CONF_ADAPTATION_LABELS: Final = "adaptation_labels"  # options: {appliance: entity_id}
CONF_LABEL_PREFIX: Final = "label_"  # the options form's field per appliance
ADAPTERS_SUBDIR: Final = "nilm/adapters"  # <config>/nilm/adapters/<model>.adapter.json
ADAPTATION_DAYS: Final = 14  # the history a re-fit reads (at most)
ADAPTATION_INTERVAL_H: Final = 24.0  # the automatic re-fit runs this often
ADAPTATION_FIRST_FIT_MIN: Final = 5.0  # after setup (a start, new options): the first re-fit
LABEL_ON_OFF_DOMAINS: Final = ("binary_sensor", "switch", "input_boolean")
ADAPTATION_NOT_CONFIGURED: Final = "not_configured"  # no label entity chosen
ADAPTATION_NOT_ADAPTABLE: Final = "not_adaptable"  # the model card names no head
ADAPTATION_COLLECTING: Final = "collecting"  # a label, but not enough runs (or no fit yet)
ADAPTATION_ADOPTED: Final = "adopted"  # a re-fitted head runs
ADAPTATION_REJECTED: Final = "rejected"  # the last re-fit did not beat the shipped model
ADAPTATION_LABEL_MISSING: Final = "label_missing"  # the label entity is gone
ADAPTATION_ERROR: Final = "error"  # the last re-fit failed, or the adapter file is invalid
ADAPTATION_STATES: Final = (
    ADAPTATION_NOT_CONFIGURED,
    ADAPTATION_NOT_ADAPTABLE,
    ADAPTATION_COLLECTING,
    ADAPTATION_ADOPTED,
    ADAPTATION_REJECTED,
    ADAPTATION_LABEL_MISSING,
    ADAPTATION_ERROR,
)
REPAIR_ADAPTER_INVALID: Final = "adapter_invalid"  # a saved adapter file cannot be used
