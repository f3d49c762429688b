"""The sidecar template: the packaged one loads, and a broken one is refused at start with a
message naming the file and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.inject.template import TemplateError, load_template

PACKAGED = Path(__file__).resolve().parents[3] / "sidecar" / "inject" / "template.yaml"


def test_the_packaged_template_is_a_native_sidecar_with_its_config_volume() -> None:
    """The default template: container llm-sidecar, restartPolicy Always, proxy port 4141,
    ConfigMap llm-sidecar mounted as its config."""
    template = load_template()
    assert template.name == "llm-sidecar"
    assert template.container["restartPolicy"] == "Always"
    assert template.proxy_port == 4141
    assert template.config_volume == "llm-sidecar-config"
    assert template.config_map == "llm-sidecar"


def broken(change: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(PACKAGED.read_text())
    change(data)
    return data


@pytest.mark.parametrize(("data", "expected"), [
    ([1], "the top level must be a mapping"),
    (broken(lambda d: d.update(extra=1)), "expected exactly the keys"),
    (broken(lambda d: d.update(proxyPort="4141")), "proxyPort must be a port number"),
    (broken(lambda d: d.update(proxyPort=True)), "proxyPort must be a port number"),
    (broken(lambda d: d["container"].update(name="LLM")), "container.name must be a DNS label"),
    (broken(lambda d: d["container"].pop("image")), "container.image must be a non-empty"),
    (broken(lambda d: d["container"].pop("restartPolicy")), "restartPolicy must be Always"),
    (broken(lambda d: d["volumes"].pop()), "volumeMounts name volumes that are not in volumes"),
    (broken(lambda d: d["volumes"].append(d["volumes"][0])), "volume names repeat"),
    (broken(lambda d: d["volumes"][0].pop("configMap")),
     "exactly one volume must be a configMap volume"),
], ids=["list", "extra-key", "port-string", "port-bool", "bad-name", "no-image", "not-native",
        "mount-without-volume", "repeated-volume", "no-config-volume"])
def test_broken_templates_are_refused(tmp_path: Path, data: Any, expected: str) -> None:
    """Each broken template raises TemplateError naming the file and the problem."""
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TemplateError) as caught:
        load_template(path)
    assert str(caught.value).startswith(str(path))
    assert expected in str(caught.value)


def test_unreadable_and_unparsable_files_are_refused(tmp_path: Path) -> None:
    """A missing file and a file that is not YAML are TemplateErrors too."""
    with pytest.raises(TemplateError, match="cannot read the template"):
        load_template(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("container: [unclosed\n")
    with pytest.raises(TemplateError, match="not valid YAML"):
        load_template(bad)
