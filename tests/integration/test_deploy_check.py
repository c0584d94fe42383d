"""``manage.py check --deploy`` is clean with the production settings the README documents, and flags a
deployment that leaves them out."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# README "Production settings": an HTTPS deployment behind a TLS-terminating reverse proxy.
PRODUCTION = {
    "DEBUG": "false",
    "ALLOWED_HOSTS": "hsi.example.com",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
}


def deploy_check(tmp_path, extra: dict[str, str]) -> subprocess.CompletedProcess:
    keep = ("PATH", "HOME", "LANG", "DATABASE_URL", "REDIS_URL")
    environment = {name: os.environ[name] for name in keep if name in os.environ}
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "hsi.settings",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "HSI_DATA_DIR": str(tmp_path / "data"),
            "FOSCAM_BASE_PATH": str(tmp_path / "foscam"),
            **extra,
        }
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check(tmp_path):
    result = deploy_check(tmp_path, PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_plain_http_deployment_fails_the_deploy_check(tmp_path):
    settings = {name: value for name, value in PRODUCTION.items() if not name.startswith("SECURE_")}

    result = deploy_check(tmp_path, settings)

    assert result.returncode != 0
    output = result.stdout + result.stderr
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in output
