"""Settings: defaults, the YAML file, ${VAR} and file: expansion, env overrides, dotted errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.config import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sidecar.yaml"
    path.write_text(text)
    return path


def problems(path: Path | None, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env=env or {})
    return caught.value.problems


def test_defaults_need_no_file() -> None:
    """With no file and no env, the documented defaults apply."""
    settings = load_settings(env={})
    assert (settings.listen.host, settings.listen.port) == ("127.0.0.1", 4141)
    assert settings.upstream.url == "https://openrouter.ai/api/v1"
    assert settings.upstream.api_key is None
    assert settings.cache.backend == "memory"
    assert settings.listen.max_body_bytes == 32 * 1024 * 1024
    assert settings.telemetry.logs.format == "json"


def test_interface_example_is_valid(tmp_path: Path) -> None:
    """The full example configuration from INTERFACE.md section 2 validates."""
    example = Path(__file__).parents[2] / "fixtures" / "interface-example.yaml"
    settings = load_settings(example, env={"OPENROUTER_API_KEY": "sk-or", "TEAM_A_TOKEN": "t-a",
                                           "LANGFUSE_AUTH": "abc"})
    assert settings.upstream.api_key is not None
    assert settings.upstream.api_key.get_secret_value() == "sk-or"
    assert settings.auth.keys[0].allowed_models == ["openai/*"]
    assert settings.spend.budgets[1].scope == "key"


def test_env_expansion_and_defaults(tmp_path: Path) -> None:
    """${VAR} takes the env value, ${VAR:-d} falls back when unset or empty, $$ is a dollar."""
    path = write(tmp_path, "upstream:\n  api_key: ${KEY}\n  headers:\n"
                           "    X-Title: ${TITLE:-my app}\n    X-Empty: ${EMPTY:-fallback}\n"
                           "    X-Price: $$5 ${KEY}\n")
    settings = load_settings(path, env={"KEY": "sk-1", "EMPTY": ""})
    assert settings.upstream.api_key is not None
    assert settings.upstream.api_key.get_secret_value() == "sk-1"
    assert settings.upstream.headers == {"X-Title": "my app", "X-Empty": "fallback",
                                         "X-Price": "$5 sk-1"}


def test_unset_variable_names_key_and_variable(tmp_path: Path) -> None:
    """A ${VAR} with no value and no default is an error naming the key and the variable."""
    path = write(tmp_path, "upstream:\n  api_key: ${MISSING_KEY}\n")
    assert problems(path) == [
        "upstream.api_key: environment variable MISSING_KEY is not set "
        "(use ${MISSING_KEY:-} to allow it to be empty)"]


def test_file_secret_is_read(tmp_path: Path) -> None:
    """A file:/path value is replaced by the file's content without its trailing newline."""
    secret = tmp_path / "key"
    secret.write_text("sk-from-file\n")
    path = write(tmp_path, f"upstream:\n  api_key: file:{secret}\n")
    settings = load_settings(path, env={})
    assert settings.upstream.api_key is not None
    assert settings.upstream.api_key.get_secret_value() == "sk-from-file"


def test_missing_file_secret_is_an_error(tmp_path: Path) -> None:
    """An unreadable file: secret is reported with its key and path."""
    path = write(tmp_path, f"upstream:\n  api_key: file:{tmp_path}/nope\n")
    [line] = problems(path)
    assert line.startswith(f"upstream.api_key: cannot read secret file {tmp_path}/nope")


def test_env_overrides_file_and_flags_override_env(tmp_path: Path) -> None:
    """Precedence is defaults < file < SIDECAR_* env < command-line flags."""
    path = write(tmp_path, "listen: {host: 0.0.0.0, port: 5000}\ncache: {backend: redis}\n")
    env = {"SIDECAR_PORT": "6000", "SIDECAR_CACHE": "off", "SIDECAR_ZDR": "1",
           "SIDECAR_LOG_LEVEL": "debug", "SIDECAR_STATE_DIR": str(tmp_path),
           "SIDECAR_UPSTREAM_API_KEY": "sk-env", "SIDECAR_LEDGER": "sqlite:///x.db",
           "SIDECAR_REDIS_URL": "redis://r:6379/0", "SIDECAR_LOG_FORMAT": "console",
           "SIDECAR_UPSTREAM_URL": "http://up:1/v1", "SIDECAR_HOST": "::1",
           "SIDECAR_ADMIN_HOST": "0.0.0.0", "SIDECAR_ADMIN_PORT": "4142"}
    settings = load_settings(path, env=env, overrides={"listen.port": 7000, "listen.host": None})
    assert settings.listen.port == 7000  # flag beats env
    assert settings.listen.host == "::1"  # env beats file (the flag was not given)
    assert settings.cache.backend == "off"
    assert settings.cache.redis_url == "redis://r:6379/0"
    assert settings.privacy.zdr is True
    assert settings.telemetry.logs.level == "debug"
    assert settings.telemetry.logs.format == "console"
    assert settings.state_dir == tmp_path
    assert settings.spend.ledger == "sqlite:///x.db"
    assert settings.upstream.url == "http://up:1/v1"
    assert settings.upstream.api_key is not None
    assert (settings.admin.host, settings.admin.port) == ("0.0.0.0", 4142)


def test_every_problem_is_reported_with_its_dotted_key(tmp_path: Path) -> None:
    """Unknown keys, bad types and bad values are all listed, one line each, by dotted key."""
    path = write(tmp_path, """
listen: {port: 70000, hots: x}
upstream: {url: ftp://example.com}
auth:
  keys:
    - {name: a, token: t, colour: red}
spend: {budgets: [{name: b}]}
bogus: 1
""")
    assert problems(path) == [
        "listen.port: Input should be less than or equal to 65535",
        "listen.hots: unknown key (check the spelling; see the configuration reference)",
        "upstream.url: must be an http:// or https:// URL",
        "auth.keys[0].colour: unknown key (check the spelling; see the configuration reference)",
        "spend.budgets[0].limit_usd: Field required",
        "bogus: unknown key (check the spelling; see the configuration reference)",
    ]


def test_env_errors_name_the_variable(tmp_path: Path) -> None:
    """A bad env override is reported with the key and the variable it came from."""
    assert problems(None, {"SIDECAR_PORT": "http"}) == [
        "listen.port (from SIDECAR_PORT): Input should be a valid integer, unable to parse "
        "string as an integer"]


def test_auth_required_without_keys_is_rejected(tmp_path: Path) -> None:
    """auth.required with no keys would refuse everyone, so it does not start."""
    path = write(tmp_path, "auth: {required: true}\n")
    [line] = problems(path)
    assert line.startswith("auth: required is true but no keys are configured")


def test_duplicate_tokens_are_rejected(tmp_path: Path) -> None:
    """Two local keys may not share a token (a token must identify one key)."""
    path = write(tmp_path, "auth:\n  keys:\n    - {name: a, token: same}\n"
                           "    - {name: b, token: same}\n")
    assert problems(path) == ["auth: two keys share one token"]


@pytest.mark.parametrize(("window", "expected"), [
    ("not_before: 2026-12-07T00:00:00Z, not_after: 2026-12-06T00:00:00Z",
     "auth.keys[0]: not_after must be later than not_before"),
    ("not_after: 2026-12-06", "auth.keys[0].not_after: Input should have timezone info"),
], ids=["backwards", "no_zone"])
def test_a_key_rotation_window_is_checked(tmp_path: Path, window: str, expected: str) -> None:
    """A key's not_after must follow its not_before, and both need a time zone (a bare date
    or local time would mean a different instant on every machine)."""
    path = write(tmp_path, f"auth:\n  keys:\n    - {{name: a, token: t, {window}}}\n")
    [line] = problems(path)
    assert line.startswith(expected)


def test_admin_port_must_differ(tmp_path: Path) -> None:
    """The admin listener cannot take the proxy's port."""
    path = write(tmp_path, "admin: {port: 4141}\n")
    assert problems(path) == ["(top level): admin.port must differ from listen.port (null keeps "
                              "admin routes on the main listener)"]


def test_yaml_syntax_error_has_a_position(tmp_path: Path) -> None:
    """Broken YAML is reported with its line and column."""
    path = write(tmp_path, "listen:\n  port: [4141\n")
    [line] = problems(path)
    assert line.startswith(f"{path}: not valid YAML at line 3, column 1")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    """A YAML list or scalar at the top is refused with a clear reason."""
    path = write(tmp_path, "- a\n- b\n")
    assert problems(path) == [f"{path}: the top level must be a mapping of sections, not a list"]


def test_missing_file_is_reported(tmp_path: Path) -> None:
    """A config path that does not exist is one clear problem line."""
    [line] = problems(tmp_path / "absent.yaml")
    assert "cannot read the config file" in line


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    """An empty file is a valid config of all defaults."""
    assert load_settings(write(tmp_path, ""), env={}).listen.port == 4141


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after validation."""
    settings = load_settings(env={})
    with pytest.raises(Exception, match="frozen"):
        settings.listen.port = 1  # type: ignore[misc]


def test_bare_off_means_off(tmp_path: Path) -> None:
    """`mode: off` and `backend: off` (YAML 1.1 booleans) mean the documented "off"."""
    path = write(tmp_path, "cache: {backend: off}\nprivacy: {redact: {mode: off}}\n")
    settings = load_settings(path, env={})
    assert settings.cache.backend == "off"
    assert settings.privacy.redact.mode == "off"


def test_expanded_values_cannot_inject_yaml(tmp_path: Path) -> None:
    """A variable's value is substituted after parsing, so YAML syntax in it stays text."""
    path = write(tmp_path, "upstream: {headers: {X-Title: ${TITLE}}}\n")
    settings = load_settings(path, env={"TITLE": "a, b: {c: d}\nlisten: {port: 1}"})
    assert settings.upstream.headers["X-Title"] == "a, b: {c: d}\nlisten: {port: 1}"
    assert settings.listen.port == 4141
