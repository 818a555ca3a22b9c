"""Set-up fetch of the Open Bandit sample: checksum enforced, files copied byte for byte."""

import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest

from liveslate.data import obd_fetch


def _fake_wheel(path: Path) -> dict[str, bytes]:
    contents = {member: f"content of {member}\n".encode() for member in obd_fetch.wanted_members()}
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in contents.items():
            archive.writestr(member, data)
        archive.writestr("obp/dataset/obd/.DS_Store", b"junk")  # must not be copied
    return contents


def test_extract_copies_exactly_the_wanted_members(tmp_path):
    wheel = tmp_path / "obp.whl"
    contents = _fake_wheel(wheel)
    written = obd_fetch.extract_obd(wheel, tmp_path / "obd")
    assert len(written) == 13  # 2 policies × 3 campaigns × (log + item_context) + the prior
    mapping = obd_fetch.wanted_members()
    for member, relative in mapping.items():
        assert (tmp_path / "obd" / relative).read_bytes() == contents[member]
    assert not list((tmp_path / "obd").rglob(".DS_Store"))
    assert obd_fetch.obd_present(tmp_path / "obd")


def test_a_wheel_with_the_wrong_checksum_is_refused(tmp_path, monkeypatch):
    def fake_pip(cmd, check):  # what a tampered mirror would hand back
        (Path(cmd[cmd.index("-d") + 1]) / obd_fetch.OBP_WHEEL).write_bytes(b"not the real wheel")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(obd_fetch.subprocess, "run", fake_pip)
    with pytest.raises(RuntimeError, match="does not match the pinned"):
        obd_fetch.download_wheel(tmp_path)
    assert not (tmp_path / obd_fetch.OBP_WHEEL).exists()  # the bad file is not left behind


def test_a_cached_wheel_with_the_right_checksum_is_not_downloaded_again(tmp_path, monkeypatch):
    cached = tmp_path / obd_fetch.OBP_WHEEL
    cached.write_bytes(b"pretend wheel")
    monkeypatch.setattr(obd_fetch, "OBP_SHA256", hashlib.sha256(b"pretend wheel").hexdigest())
    monkeypatch.setattr(obd_fetch.subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    assert obd_fetch.download_wheel(tmp_path) == cached


def test_a_wheel_missing_a_member_is_an_error(tmp_path):
    wheel = tmp_path / "obp.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("obp/policy/conf/prior_bts.yaml", b"x")
    with pytest.raises(RuntimeError, match="expected member .* is missing"):
        obd_fetch.extract_obd(wheel, tmp_path / "obd")
