"""`liveslate deploy` refuses clearly when nothing was packaged, and never starts a server then."""

from typer.testing import CliRunner

from liveslate.cli import app


def test_deploy_without_a_packaged_bento_names_the_missing_record(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    result = CliRunner().invoke(app, ["deploy", "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 1
    assert "artifacts/bento/bento.json: no packaged Bento" in result.output
    assert not (tmp_path / "artifacts" / "deploy" / "staging.json").exists()


def test_deploy_with_a_params_typo_exits_2(tmp_path):
    (tmp_path / "params.yaml").write_text("deploy:\n  prot: 3000\n")
    result = CliRunner().invoke(app, ["deploy", "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 2
    assert "deploy.prot: unknown key" in result.output
