"""Packaging rules: manifest.json (hassfest), hacs.json (HACS), translations, brand icon.

The key sets and enums mirror hassfest's manifest schema and HACS's hacs.json schema
(https://developers.home-assistant.io/docs/creating_integration_manifest,
https://hacs.xyz/docs/publish/start#hacsjson), which are not installable packages.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from awesomeversion import AwesomeVersion
from homeassistant.const import __version__ as HA_VERSION

ROOT = Path(__file__).resolve().parents[3]
INTEGRATION = ROOT / "custom_components" / "nilm"

MANIFEST_KEYS = {
    "domain", "name", "after_dependencies", "bluetooth", "codeowners", "config_flow",
    "dependencies", "dhcp", "disabled", "documentation", "homekit", "import_executor",
    "integration_type", "iot_class", "issue_tracker", "loggers", "mqtt", "requirements",
    "single_config_entry", "ssdp", "usb", "version", "zeroconf",
}  # fmt: skip
MANIFEST_REQUIRED = {
    "domain", "name", "codeowners", "config_flow", "documentation", "integration_type",
    "iot_class", "issue_tracker", "requirements", "version",
}  # fmt: skip
INTEGRATION_TYPES = {"device", "entity", "hardware", "helper", "hub", "service", "system"}
IOT_CLASSES = {
    "assumed_state", "calculated", "cloud_polling", "cloud_push", "local_polling", "local_push",
}  # fmt: skip
# HACS 2 no longer knows render_readme (it always renders the README).
HACS_KEYS = {
    "name", "content_in_root", "zip_release", "filename", "hide_default_branch", "country",
    "homeassistant", "hacs", "persistent_directory",
}  # fmt: skip
# Pure-Python wheels only: Home Assistant OS is Alpine (musl), no compilers.
MUSL_SAFE = {"flatbuffers", "tflite"}


def _load(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_manifest_follows_hassfest_rules() -> None:
    manifest = _load(INTEGRATION / "manifest.json")
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:]), "hassfest: keys after domain/name must be sorted"
    assert set(keys) <= MANIFEST_KEYS
    assert set(keys) >= MANIFEST_REQUIRED
    assert manifest["domain"] == "nilm" == INTEGRATION.name
    assert manifest["config_flow"] is True
    assert manifest["iot_class"] == "calculated" in IOT_CLASSES
    assert manifest["integration_type"] in INTEGRATION_TYPES
    assert AwesomeVersion(str(manifest["version"])).valid
    codeowners = manifest["codeowners"]
    assert isinstance(codeowners, list)
    assert codeowners
    assert all(str(c).startswith("@") for c in codeowners)
    for key in ("documentation", "issue_tracker"):
        assert str(manifest[key]).startswith("https://")
    requirements = manifest["requirements"]
    assert isinstance(requirements, list)
    for requirement in requirements:
        name = re.split(r"[<>=!~ ]", str(requirement), maxsplit=1)[0]
        assert name in MUSL_SAFE, f"{requirement} may not install on musl"
    # The file is formatted the way hassfest writes it.
    text = (INTEGRATION / "manifest.json").read_text(encoding="utf-8")
    assert text == json.dumps(manifest, indent=2) + "\n"


def ha_versions_under_test() -> list[AwesomeVersion]:
    """The Home Assistant versions CI tests on: ``homeassistant==X`` in requirements*.txt."""
    pins = (
        re.findall(r"^homeassistant==(\S+)", path.read_text(encoding="utf-8"), re.MULTILINE)
        for path in ROOT.glob("requirements*.txt")
    )
    return [AwesomeVersion(v) for found in pins for v in found]


def test_hacs_json_follows_hacs_rules() -> None:
    hacs = _load(ROOT / "hacs.json")
    assert set(hacs) <= HACS_KEYS
    assert isinstance(hacs.get("name"), str)
    assert hacs["name"]
    # CI runs these tests on every Home Assistant pinned in requirements*.txt (the minimum
    # and the newest installable): the declared minimum is the oldest of them, so it is
    # tested, and no tested version, the one running now included, is older than it.
    minimum = AwesomeVersion(str(hacs["homeassistant"]))
    assert minimum.valid
    tested = ha_versions_under_test()
    assert len(tested) >= 2, tested
    assert AwesomeVersion(HA_VERSION) in tested
    assert all(minimum <= version for version in tested), (minimum, tested)
    assert minimum == min(tested)


def _translation_keys(obj: object, prefix: str = "") -> set[str]:
    if isinstance(obj, dict):
        out: set[str] = set()
        for key, value in obj.items():
            out |= _translation_keys(value, f"{prefix}.{key}" if prefix else key)
        return out
    return {prefix}


def test_translations_cover_every_key_the_code_uses() -> None:
    en = _load(INTEGRATION / "translations" / "en.json")
    keys = _translation_keys(en)
    for error in ("entity_not_found", "not_numeric", "invalid_unit", "no_appliances"):
        assert f"config.error.{error}" in keys
    assert "config.abort.already_configured" in keys
    assert "options.error.no_appliances" in keys
    for field in ("mains_entities", "appliances", "backend"):
        assert f"config.step.user.data.{field}" in keys
    for field in ("appliances", "backend", "max_gap_s"):
        assert f"options.step.init.data.{field}" in keys
    for backend in ("auto", "cpu", "coral"):
        assert f"selector.backend.options.{backend}" in keys
    for key in ("power", "energy", "energy_today", "untracked_power"):
        assert f"entity.sensor.{key}.name" in keys
    assert "entity.binary_sensor.running.name" in keys
    source = "\n".join(p.read_text(encoding="utf-8") for p in INTEGRATION.glob("*.py"))
    issues = set(re.findall(r'ISSUE_[A-Z_]+: Final = "([a-z_]+)"', source))
    assert issues == {"model_missing", "model_corrupt", "model_unsupported", "backend_unavailable"}
    for issue in issues:
        assert f"issues.{issue}.title" in keys
        assert f"issues.{issue}.description" in keys
    # Placeholders used in texts are the ones the code passes.
    for text in (en["issues"][i]["description"] for i in issues):  # type: ignore[index]
        assert set(re.findall(r"{(\w+)}", str(text))) <= {"model", "error", "folder"}


def test_brand_icon_is_a_256_png() -> None:
    data = (INTEGRATION / "brand" / "icon.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (256, 256)
