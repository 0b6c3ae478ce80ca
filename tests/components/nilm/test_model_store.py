"""model_store.py: which model runs for an appliance: a user model replaces the bundled one."""

from __future__ import annotations

from pathlib import Path

from custom_components.nilm.model_store import (
    discover_models,
    offered_models,
    one_per_appliance,
    replacement_for,
)

from .conftest import install


def test_a_user_model_replaces_the_bundled_one_of_its_appliance(
    tmp_path: Path, no_bundled_models: Path
) -> None:
    install(no_bundled_models, "kettle", "test_kettle")
    install(no_bundled_models, "microwave", "test_microwave")
    user = tmp_path / "user"
    install(user, "my_kettle", "test_kettle")
    found = discover_models(user)
    assert set(found) == {"kettle", "microwave", "my_kettle"}

    # The flows offer one model per appliance: the user's kettle, the bundled microwave.
    offered = offered_models(found)
    assert list(offered) == ["microwave", "my_kettle"]
    assert one_per_appliance(offered) == ["microwave", "my_kettle"]
    # An entry configured with the bundled kettle now runs the user's (same device).
    chosen = replacement_for(found, "kettle")
    assert chosen is not None
    assert chosen.card.name == "my_kettle"
    assert chosen.user
    microwave = replacement_for(found, "microwave")
    assert microwave is not None
    assert not microwave.user
    assert replacement_for(found, "fridge") is None

    # Two user models for one appliance: both offered, one ticked, the first by name.
    install(user, "a_kettle", "test_kettle")
    found = discover_models(user)
    assert list(offered_models(found)) == ["a_kettle", "microwave", "my_kettle"]
    assert one_per_appliance(offered_models(found)) == ["a_kettle", "microwave"]
    chosen = replacement_for(found, "kettle")
    assert chosen is not None
    assert chosen.card.name == "a_kettle"
