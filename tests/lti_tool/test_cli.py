from __future__ import annotations

from click.testing import CliRunner

from lti_tool.cli import main


def test_platform_add_list_disable(app, runner):
    args = [
        "platform", "add", "--name", "Moodle", "--issuer", "https://moodle.example.edu",
        "--client-id", "abc", "--auth-login-url", "https://moodle.example.edu/mod/lti/auth.php",
        "--token-url", "https://moodle.example.edu/mod/lti/token.php",
        "--key-set-url", "https://moodle.example.edu/mod/lti/certs.php",
        "--deployment-id", "1", "--deployment-id", "2",
    ]  # fmt: skip
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    listing = runner.invoke(main, ["platform", "list"]).output
    assert "https://moodle.example.edu" in listing and "1,2" in listing and "active" in listing
    platform_id = listing.split("\t")[0]
    assert runner.invoke(main, ["platform", "disable", platform_id]).exit_code == 0
    assert "disabled" in runner.invoke(main, ["platform", "list"]).output
    assert runner.invoke(main, ["platform", "approve", platform_id]).exit_code == 0
    assert "\tactive\t" in runner.invoke(main, ["platform", "list"]).output


def test_platform_add_rejects_a_non_url(app, runner):
    result = runner.invoke(
        main,
        ["platform", "add", "--name", "x", "--issuer", "moodle", "--client-id", "a",
         "--auth-login-url", "x", "--token-url", "x", "--key-set-url", "x"],
    )  # fmt: skip
    assert result.exit_code != 0 and "issuer must be an http(s) URL" in result.output


def test_disable_unknown_platform_is_a_clear_error(app, runner):
    result = runner.invoke(main, ["platform", "disable", "999"])
    assert result.exit_code != 0 and "no platform with id 999" in result.output


def test_keys_rotate_two_phases(app, runner):
    first = runner.invoke(main, ["keys", "rotate"])
    assert first.exit_code == 0 and "published" in first.output
    second = runner.invoke(main, ["keys", "rotate"])
    assert second.exit_code == 0 and "now signs" in second.output


def test_admin_create_hashes_the_password(app, runner):
    from lti_tool.services import admins

    result = runner.invoke(main, ["admin", "create", "root"], input="correct horse battery\n" * 2)
    assert result.exit_code == 0, result.output
    assert admins.authenticate("root", "correct horse battery") is not None
    assert admins.authenticate("root", "wrong password!!") is None
    short = runner.invoke(main, ["admin", "create", "x"], input="short\nshort\n")
    assert short.exit_code != 0 and "at least 12" in short.output


def test_db_upgrade_on_sqlite(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/demo.db"
    monkeypatch.setenv("MARGINALIA_DATABASE_URL", url)
    monkeypatch.setenv("MARGINALIA_MODE", "demo")
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    import sqlite3

    tables = {
        row[0]
        for row in sqlite3.connect(f"{tmp_path}/demo.db").execute(
            "select name from sqlite_master where type='table'"
        )
    }
    assert {"platform", "deployment", "tool_key", "activity", "grade_target"} <= tables
