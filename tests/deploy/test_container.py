"""The Containerfile and deploy/compose.yaml, linted (no container tool reaches a daemon in CI; when one does,
the image is built too): non-root, no secrets, a health check, the exposed port, and a compose file whose
services run that image with the env files and a password-free database URL."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from broadcaster.channels.registry import KINDS
from broadcaster.config import load_config
from broadcaster.store.urls import check_url

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONTAINERFILE = ROOT / "Containerfile"
IMAGE = "localhost/broadcaster:latest"
PORT = "8080"
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PGPASS", "AUTH", "KEY", "SID")


class Instruction(NamedTuple):
    keyword: str
    arguments: str


def instructions(text: str) -> list[Instruction]:
    """The Containerfile's instructions, continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "a continuation line ends the file"
    return [Instruction(keyword.upper(), rest.strip()) for keyword, _, rest in (s.partition(" ") for s in logical)]


def final_stage() -> list[Instruction]:
    steps = instructions(CONTAINERFILE.read_text(encoding="utf-8"))
    last_from = max(i for i, step in enumerate(steps) if step.keyword == "FROM")
    return steps[last_from:]


def test_every_stage_is_python_3_11_slim() -> None:
    froms = [s.arguments.split()[0] for s in instructions(CONTAINERFILE.read_text(encoding="utf-8"))
             if s.keyword == "FROM"]
    assert froms and set(froms) == {"python:3.11-slim"}


def test_the_image_runs_as_a_dedicated_non_root_user() -> None:
    stage = final_stage()
    users = [s for s in stage if s.keyword == "USER"]
    assert users and users[-1].arguments == "broadcaster"
    assert users[-1].arguments not in ("root", "0", "0:0")
    created = next(i for i, s in enumerate(stage) if s.keyword == "RUN" and "useradd" in s.arguments)
    assert "broadcaster" in stage[created].arguments and "--system" in stage[created].arguments
    # Nothing after USER runs as root again; the service starts as the user.
    assert stage.index(users[-1]) > created
    assert [s.keyword for s in stage[stage.index(users[-1]):]].count("USER") == 1


def test_it_installs_the_wheel_and_fribidi_for_the_alert_cards() -> None:
    steps = instructions(CONTAINERFILE.read_text(encoding="utf-8"))
    runs = [s.arguments for s in steps if s.keyword == "RUN"]
    assert any("pip wheel" in r and "--wheel-dir /wheels" in r for r in runs)
    final_runs = [s.arguments for s in final_stage() if s.keyword == "RUN"]
    assert any("apt-get install" in r and "libfribidi0" in r and "rm -rf /var/lib/apt/lists" in r
               for r in final_runs)
    assert any("pip install" in r and "--no-index --find-links /wheels broadcaster" in r for r in final_runs)
    # Only the project's own files go into the build: never channels.toml, a recipient list or an env file.
    copies = [s.arguments for s in steps if s.keyword in ("COPY", "ADD")]
    assert copies == ["pyproject.toml README.md ./", "broadcaster ./broadcaster", "--from=build /wheels /wheels"]


def test_no_secret_is_baked_in() -> None:
    text = CONTAINERFILE.read_text(encoding="utf-8")
    settings = [s.arguments for s in instructions(text) if s.keyword in ("ENV", "ARG", "LABEL")]
    names = [word.split("=", 1)[0] for setting in settings for word in setting.split() if "=" in word]
    assert names and not any(w in n.upper() for n in names for w in SECRET_WORDS), names
    config = load_config(ROOT / "channels.toml", KINDS)
    secret_names = {env for c in config.channels for env in c.secret_env_names().values()}
    assert secret_names and not any(name in text for name in secret_names)


def test_it_exposes_the_port_it_serves_and_checks_its_health_there() -> None:
    stage = final_stage()
    (expose,) = [s.arguments for s in stage if s.keyword == "EXPOSE"]
    assert expose == PORT
    (health,) = [s.arguments for s in stage if s.keyword == "HEALTHCHECK"]
    assert " CMD " in f" {health} " and f"127.0.0.1:{PORT}/api/openapi.json" in health
    (cmd,) = [s.arguments for s in stage if s.keyword == "CMD"]
    assert yaml.safe_load(cmd) == ["serve", "--host", "0.0.0.0", "--port", PORT, "--insecure-http"]
    (entry,) = [s.arguments for s in stage if s.keyword == "ENTRYPOINT"]
    assert yaml.safe_load(entry) == ["broadcaster"]


def test_the_build_context_leaves_out_the_venv_and_env_files() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert {".venv", "var", ".git", "deploy/*.env"} <= set(ignored)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


APP_SERVICES = ("migrate", "serve", "worker")


def test_compose_runs_serve_worker_and_postgresql(compose: Mapping[str, Any]) -> None:
    assert set(compose["services"]) == {"db", *APP_SERVICES}
    assert compose["services"]["db"]["image"].split("/")[-1].startswith("postgres:")
    assert "pgdata" in compose["volumes"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_app_service_runs_the_image_with_its_env_file_and_read_only_config(
    compose: Mapping[str, Any], name: str
) -> None:
    service = compose["services"][name]
    assert service["image"] == IMAGE
    assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == CONTAINERFILE
    assert service["env_file"] == ["./broadcaster.env"] and (DEPLOY / "broadcaster.env.example").is_file()
    assert "./config:/etc/broadcaster:ro" in service["volumes"]
    assert service["environment"]["BROADCASTER_CONFIG"] == "/etc/broadcaster/channels.toml"
    url = service["environment"]["BROADCASTER_DB"]
    check_url(url)  # a password in it would be refused, named without the password
    assert url.startswith("postgresql://") and "@db:" in url
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert not any(w in key.upper() for key in service["environment"] for w in SECRET_WORDS)


def test_each_command_is_what_its_name_says(compose: Mapping[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["serve"]["command"][0] == "serve" and services["worker"]["command"] == ["worker"]
    assert services["serve"]["ports"] == [f"127.0.0.1:{PORT}:{PORT}"]  # the host's loopback; TLS proxy in front
    assert "ports" not in services["worker"] and services["worker"]["healthcheck"] == {"disable": True}
    for name in ("serve", "worker"):
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}


def test_postgresql_takes_its_password_from_its_env_file(compose: Mapping[str, Any]) -> None:
    db = compose["services"]["db"]
    assert db["env_file"] == ["./postgres.env"] and (DEPLOY / "postgres.env.example").is_file()
    assert "POSTGRES_PASSWORD" not in db["environment"]
    assert db["environment"]["POSTGRES_USER"] == "broadcaster"


def env_names(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("=", 1)[0] for line in lines if line and not line.startswith("#")]


def test_the_env_examples_name_every_secret_and_hold_no_value() -> None:
    config = load_config(ROOT / "channels.toml", KINDS)
    wanted = {env for c in config.channels for env in c.secret_env_names().values()}
    example = DEPLOY / "broadcaster.env.example"
    assert set(env_names(example)) == wanted | {"PGPASSWORD"}
    assert env_names(DEPLOY / "postgres.env.example") == ["POSTGRES_PASSWORD"]
    for path in (example, DEPLOY / "postgres.env.example"):
        assert all(line.endswith("=") for line in path.read_text(encoding="utf-8").splitlines()
                   if line and not line.startswith("#"))


def container_tool() -> str | None:
    """podman or docker, when it can reach its engine (a client without a daemon cannot build)."""
    for tool in ("podman", "docker"):
        path = shutil.which(tool)
        if path and subprocess.run([path, "info"], capture_output=True, timeout=30, check=False).returncode == 0:
            return path
    return None


@pytest.mark.slow
def test_the_image_builds_when_a_container_tool_is_there() -> None:
    tool = container_tool()
    if tool is None:
        pytest.skip("no podman or docker engine here: the Containerfile is linted above instead")
    done = subprocess.run([tool, "build", "-t", IMAGE, "-f", str(CONTAINERFILE), str(ROOT)],
                          capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
