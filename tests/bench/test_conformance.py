"""bench.conformance without the network: its sidecar configurations are valid settings, its
JUnit reading and its report name every test that passes directly but not through the sidecar;
bench.realtime measures through a real sidecar process."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import realtime
from bench.conformance import outcomes, report, sidecar_config
from sidecar.config import Settings

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.api_resources.test_models.TestModels" name="test_method_list"/>
<testcase classname="tests.api_resources.test_models.TestModels" name="test_method_retrieve">
<failure message="openai.NotFoundError: Error code: 404">trace</failure></testcase>
<testcase classname="tests.api_resources.test_models.TestModels" name="test_skipped">
<skipped message="skip"/></testcase>
</testsuite></testsuites>"""


@pytest.mark.parametrize("which", ["defaults", "every_feature"])
def test_sidecar_configs_are_valid_settings(which: str, tmp_path: Path) -> None:
    """Both configurations the command serves pass the sidecar's own strict validation."""
    settings = Settings.model_validate(
        sidecar_config(which, "http://127.0.0.1:4010", tmp_path, 4141, 4318))
    assert settings.upstream.url == "http://127.0.0.1:4010"
    assert settings.auth.required is (which == "every_feature")


def test_outcomes_and_the_report(tmp_path: Path) -> None:
    """A test that passed directly and failed through the sidecar is listed with its reason."""
    junit = tmp_path / "direct.xml"
    junit.write_text(JUNIT)
    direct = outcomes(junit)
    assert [state for state, _ in direct.values()] == ["passed", "failed", "skipped"]
    through = dict(direct)
    lost = "tests.api_resources.test_models.TestModels::test_method_list"
    through[lost] = ("failed", "openai.BadRequestError: 400")
    text = report("9.9.9", tmp_path / "spec.yml", {"direct": direct, "defaults": through})
    assert "passed directly, not through the sidecar (defaults): 1" in text
    assert f"  {lost}  openai.BadRequestError: 400" in text


def test_realtime_bench_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """python -m bench.realtime, a few frames: a row per payload, direct and through."""
    assert realtime.main(["--frames", "40", "--rounds", "40"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("payload") and len(out) == 3
    assert out[1].startswith("200 B event") and out[2].startswith("32 KiB audio")
