"""repairs.py: a user model that ran and was removed is a repair, not a silent swap; its
fix keeps the bundled model, putting the files back runs the user's again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component

from custom_components.nilm.const import DOMAIN, REPAIR_USER_MODEL_GONE

from .conftest import MAINS, W_ATTRS, install, make_entry, setup_entry


def running_model(entry: Any) -> str:
    return str(entry.runtime_data.coordinator.appliances["kettle"].model.card.name)


async def reload(hass: HomeAssistant, entry: Any) -> None:
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()


def remove(folder: Path, name: str) -> None:
    for suffix in (".json", ".tflite"):
        (folder / f"{name}{suffix}").unlink()


async def test_a_removed_user_model_is_a_repair_until_the_user_confirms_the_bundled_one(
    hass: HomeAssistant, no_bundled_models: Path, hass_client: Any
) -> None:
    install(no_bundled_models, "kettle", "test_kettle")
    user = Path(hass.config.path("nilm/models"))
    install(user, "my_kettle", "test_kettle", appliance="kettle")
    hass.states.async_set(MAINS, "100", W_ATTRS)
    assert await async_setup_component(hass, "repairs", {})
    entry = await setup_entry(hass, make_entry(["kettle"]))
    assert running_model(entry) == "my_kettle"
    issue_id = f"{entry.entry_id}_kettle"
    registry = ir.async_get(hass)
    assert registry.async_get_issue(DOMAIN, issue_id) is None

    remove(user, "my_kettle")
    await reload(hass, entry)
    assert running_model(entry) == "kettle"  # the bundled model runs meanwhile
    issue = registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == REPAIR_USER_MODEL_GONE
    assert issue.is_fixable and issue.severity is ir.IssueSeverity.WARNING
    assert "my_kettle is no longer installed" in (issue.translation_placeholders or {})["error"]
    await reload(hass, entry)  # a restart does not forget it
    assert registry.async_get_issue(DOMAIN, issue_id) is not None

    client = await hass_client()
    started = await client.post(
        "/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": issue_id}
    )
    assert started.status == 200
    flow = await started.json()
    assert flow["step_id"] == "confirm"
    done = await client.post(f"/api/repairs/issues/fix/{flow['flow_id']}", json={})
    assert (await done.json())["type"] == "create_entry"
    assert registry.async_get_issue(DOMAIN, issue_id) is None
    await reload(hass, entry)
    assert registry.async_get_issue(DOMAIN, issue_id) is None
    assert running_model(entry) == "kettle"


async def test_putting_the_user_model_back_runs_it_and_ends_the_repair(
    hass: HomeAssistant, no_bundled_models: Path
) -> None:
    install(no_bundled_models, "kettle", "test_kettle")
    user = Path(hass.config.path("nilm/models"))
    install(user, "my_kettle", "test_kettle", appliance="kettle")
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry(["kettle"]))
    remove(user, "my_kettle")
    await reload(hass, entry)
    issue_id = f"{entry.entry_id}_kettle"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None

    install(user, "my_kettle", "test_kettle", appliance="kettle")
    await reload(hass, entry)
    assert running_model(entry) == "my_kettle"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_removing_the_entry_forgets_its_user_models(
    hass: HomeAssistant, no_bundled_models: Path, hass_storage: dict[str, Any]
) -> None:
    install(no_bundled_models, "kettle", "test_kettle")
    install(Path(hass.config.path("nilm/models")), "my_kettle", "test_kettle", appliance="kettle")
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry(["kettle"]))
    key = f"{DOMAIN}.{entry.entry_id}.installed"
    assert hass_storage[key]["data"] == {"kettle": "my_kettle"}
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert key not in hass_storage
