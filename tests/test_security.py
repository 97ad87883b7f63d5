"""Security basics that need no running service: secrets stay out of output, SQL only with bound
parameters. (The worker's HTTP surface and its logs are checked in tests/test_hostile_input.py;
the compose file's passwords in tests/test_compose.py.)"""

import ast
from pathlib import Path

from typer.testing import CliRunner

from infra.settings import PROJECT_ROOT, Settings, shown

SQL_CALLS = {"text", "execute", "exec_driver_sql", "scalar", "scalars"}


def test_settings_output_masks_secrets(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://sentinel:canary-password@db:5432/sentinel")
    monkeypatch.setenv("SENTINEL_ALERT_WEBHOOK_TOKEN", "canary-token")
    s = Settings()
    assert "canary" not in shown(s, "database_url") and "db:5432" in shown(s, "database_url")
    assert shown(s, "alert_webhook_token") == "***"

    from agents.cli import app
    from infra import settings as settings_module

    settings_module.get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["settings"])
    finally:
        settings_module.get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "SENTINEL_ALERT_WEBHOOK_TOKEN=***" in result.output
    assert "canary" not in result.output


def _dynamic_sql(node: ast.Call) -> bool:
    """A SQL call whose first argument is built from values (f-string, %, +, .format)."""
    if not node.args:
        return False
    arg = node.args[0]
    if isinstance(arg, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in arg.values)
    if isinstance(arg, ast.BinOp) and isinstance(arg.op, (ast.Mod, ast.Add)):
        return True
    return isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and arg.func.attr == "format"


def test_sql_is_only_built_with_bound_parameters():
    offenders = []
    for folder in ("agents", "models", "schemas", "infra"):
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call):
                    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                    if name in SQL_CALLS and _dynamic_sql(node):
                        offenders.append(f"{Path(path).relative_to(PROJECT_ROOT)}:{node.lineno}")
    assert offenders == []


def test_the_checker_catches_an_interpolated_query():
    call = ast.parse('conn.execute(text(f"select * from t where id = {value}"))').body[0].value
    inner = call.args[0]
    assert _dynamic_sql(inner)
    assert not _dynamic_sql(ast.parse('text("select 1 where id = :id")').body[0].value)
