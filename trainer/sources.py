"""One entry point for every data source: :func:`load` and :func:`load_selected`.

Above :mod:`trainer.data` (the file loaders) and :mod:`trainer.recorder` (Home Assistant's
database), so neither imports the other's dispatcher.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path

from .config import DEFAULT_DATA_CONFIG, SOURCES, DataConfig, SourceConfig
from .data import (
    HouseData,
    UserCsvSpec,
    default_data_dir,
    load_refit_8s,
    load_refit_30s,
    load_refit_clean,
    load_refit_day,
    load_ukdale,
    load_user_csv,
    parse_mapping,
    read_user_spec,
)
from .errors import TrainerError
from .recorder import load_recorder, parse_entity_mapping


def load(
    source: str,
    *,
    house: int = 2,
    data_dir: str | Path | None = None,
    path: str | Path | None = None,
    months: Iterable[str] | None = None,
    config: DataConfig = DEFAULT_DATA_CONFIG,
    user_csv: UserCsvSpec | None = None,
    mains_entity: str | None = None,
    entities: Mapping[str, str] | None = None,
) -> HouseData:
    """One entry point for every source in :data:`SOURCES` (used by train/evaluate).

    ``data_dir`` defaults to :func:`default_data_dir`; ``path`` is the file for
    refit-clean, recorder (and optionally refit8s/ukdale); ``user_csv`` the mapping for
    csv; ``mains_entity``/``entities`` the recorder entities.
    """
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if source == "refit30s":
        return load_refit_30s(root, house, months, config)
    if source == "refit8s":
        return load_refit_8s(path or root / "refit_8s_house2", config)
    if source == "refit-day":
        return load_refit_day(root, house, config)
    if source == "refit-clean":
        if path is None:
            raise TrainerError("source refit-clean needs the path of a CLEAN_House<N>.csv")
        return load_refit_clean(path, house, config)
    if source == "ukdale":
        return load_ukdale(path or root / "ukdale_house1_6s", config)
    if source == "csv":
        if user_csv is None:
            raise TrainerError(
                "source csv needs --config FILE, or --path, --timestamp-col, --mains-col "
                "and --map appliance=COLUMN"
            )
        if user_csv.period_s is not None and config.period_s is None:
            config = dataclasses.replace(config, period_s=user_csv.period_s)
        return load_user_csv(
            user_csv.path,
            user_csv.timestamp_col,
            user_csv.mains_col,
            user_csv.appliance_cols,
            unit=user_csv.unit,
            config=config,
            timezone=user_csv.timezone,
        )
    if source == "recorder":
        if path is None or not mains_entity:
            raise TrainerError(
                "source recorder needs --path home-assistant_v2.db and --mains-entity"
            )
        return load_recorder(path, mains_entity, entities or {}, config)
    raise TrainerError(f"unknown source {source!r} (known: {', '.join(SOURCES)})")


def load_selected(selection: SourceConfig, config: DataConfig = DEFAULT_DATA_CONFIG) -> HouseData:
    """Load the data a :class:`SourceConfig` selects (the CLI's data options, or a run's
    saved ``data`` record)."""
    user_csv = None
    entities = None
    if selection.source == "csv":
        if selection.config:
            user_csv = read_user_spec(selection.config)
        elif selection.path and selection.timestamp_col and selection.mains_col:
            user_csv = UserCsvSpec(
                path=Path(selection.path),
                timestamp_col=selection.timestamp_col,
                mains_col=selection.mains_col,
                appliance_cols=parse_mapping(selection.mapping),
                unit=selection.unit,
                timezone=selection.timezone,
            )
    elif selection.source == "recorder":
        entities = parse_entity_mapping(selection.mapping)
    return load(
        selection.source,
        house=selection.house,
        data_dir=selection.data_dir,
        path=selection.path,
        months=selection.months,
        config=config,
        user_csv=user_csv,
        mains_entity=selection.mains_entity,
        entities=entities,
    )
