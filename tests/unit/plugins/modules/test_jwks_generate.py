# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""jwks_generate driven as Ansible runs it (patch_module_args), on real files in tmp_path."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.arcwi.workload_identity.plugins.modules import jwks_generate

FIXTURES = Path(__file__).parent.parent / "module_utils" / "fixtures" / "jwks"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


def fixture(name: str) -> str:
    return str(FIXTURES / name)


@pytest.fixture
def run(capsys):
    """Run the module with ``args``; returns (exit code, result)."""

    def runner(args: dict, check: bool = False, diff: bool = False):
        module_args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
        with patch_module_args(module_args), pytest.raises(SystemExit) as exited:
            jwks_generate.main()
        return exited.value.code, json.loads(capsys.readouterr().out)

    return runner


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_four_step_matrix_writes_once(run, tmp_path):
    dest = tmp_path / "jwks.json"
    args = {"public_keys": [fixture("bundle.pem")], "dest": str(dest)}
    expected = EXPECTED["bundle.pem"]

    rc, check = run(args, check=True)
    assert rc == 0 and check["changed"] is True
    assert not dest.exists()
    assert check["kids"] == expected["kids"] and check["dest"] == str(dest)

    rc, real = run(args)
    assert rc == 0 and real["changed"] is True
    assert dest.read_bytes() == expected["azwi"].encode()
    assert file_mode(dest) == 0o644
    assert real["jwks"] == check["jwks"] == json.loads(expected["kube_apiserver"])
    before = dest.stat()

    rc, check_again = run(args, check=True)
    assert rc == 0 and check_again["changed"] is False

    rc, real_again = run(args)
    assert rc == 0 and real_again["changed"] is False
    after = dest.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_new_file_mode_ignores_umask(run, tmp_path):
    dest = tmp_path / "jwks.json"
    old = os.umask(0o077)
    try:
        run({"public_keys": [fixture("rsa-2048.pub.pem")], "dest": str(dest)})
    finally:
        os.umask(old)
    assert file_mode(dest) == 0o644


def test_diff_shows_content_before_and_after(run, tmp_path):
    dest = tmp_path / "jwks.json"
    run({"public_keys": [fixture("rsa-2048.pub.pem")], "dest": str(dest)})
    old = dest.read_text()

    args = {"public_keys": [fixture("rsa-2048.pub.pem"), fixture("ec-p256.pub.pem")], "dest": str(dest)}
    rc, result = run(args, check=True, diff=True)
    assert rc == 0 and result["changed"] is True
    assert result["diff"]["before"] == old
    assert json.loads(result["diff"]["after"])["keys"] == (
        json.loads(EXPECTED["rsa-2048.pub.pem"]["kube_apiserver"])["keys"]
        + json.loads(EXPECTED["ec-p256.pub.pem"]["kube_apiserver"])["keys"])
    assert result["diff"]["before_header"] == result["diff"]["after_header"] == str(dest)
    assert dest.read_text() == old  # check mode wrote nothing

    rc, result = run(args, diff=True)
    assert result["changed"] is True and json.loads(dest.read_text()) == json.loads(result["diff"]["after"])

    rc, result = run(args, diff=True)
    assert result["changed"] is False and "diff" not in result


def test_diff_of_a_new_file_and_no_diff_outside_diff_mode(run, tmp_path):
    dest = tmp_path / "jwks.json"
    args = {"public_keys": [fixture("ec-p384.crt.pem")], "dest": str(dest)}
    rc, result = run(args, check=True)
    assert result["changed"] is True and "diff" not in result
    rc, result = run(args, check=True, diff=True)
    assert result["diff"]["before"] == "" and result["diff"]["before_header"].endswith("(absent)")
    assert result["diff"]["after"] == EXPECTED["ec-p384.crt.pem"]["azwi"]


def test_mode_of_existing_file_is_corrected(run, tmp_path):
    dest = tmp_path / "jwks.json"
    args = {"public_keys": [fixture("rsa-2048.pub.pem")], "dest": str(dest)}
    run(args)
    dest.chmod(0o600)

    rc, result = run(args, check=True, diff=True)
    assert result["changed"] is True and file_mode(dest) == 0o600
    assert result["diff"]["before"] == {"mode": "0600"} and result["diff"]["after"] == {"mode": "0644"}

    rc, result = run(args)
    assert result["changed"] is True and file_mode(dest) == 0o644
    rc, result = run(dict(args, mode="0640"))
    assert result["changed"] is True and file_mode(dest) == 0o640
    rc, result = run(dict(args, mode="u=rw,g=r"))
    assert result["changed"] is False


def test_without_dest_nothing_is_written(run, tmp_path):
    rc, result = run({"public_keys_content": [(FIXTURES / "ec-p521.pub.pem").read_text()]}, diff=True)
    assert rc == 0 and result["changed"] is False
    assert "dest" not in result and "diff" not in result
    assert result["kids"] == EXPECTED["ec-p521.pub.pem"]["kids"]
    assert list(tmp_path.iterdir()) == []


def test_files_then_content(run):
    rc, result = run({"public_keys": [fixture("rsa-2048.key.pem")],
                      "public_keys_content": [(FIXTURES / "ec-p256.pub.pem").read_text(),
                                              (FIXTURES / "rsa-2048.pub.pem").read_text()]})
    assert result["kids"] == EXPECTED["rsa-2048.pub.pem"]["kids"] + EXPECTED["ec-p256.pub.pem"]["kids"]


def test_weak_rsa_key_warns(run):
    rc, result = run({"public_keys": [fixture("rsa-1024.pub.pem")]})
    assert rc == 0
    assert "is RSA 1024 bits; use 2048 bits or more" in json.dumps(result["warnings"])  # 2.19: structured


@pytest.mark.parametrize("args, needles", [
    ({"public_keys": [fixture("rsa-2048.pkcs1.pub.pem")]},
     ["openssl rsa -RSAPublicKey_in -in key.pub -pubout", "rsa-2048.pkcs1.pub.pem"]),
    ({"public_keys": [fixture("not-a-key.txt")]}, ["no public key found in", "not-a-key.txt"]),
    ({"public_keys_content": [(FIXTURES / "rsa-2048.key.pem").read_text()]},
     ["public_keys_content[0]", "private keys are read only from files"]),
    ({}, ["one of the following is required: public_keys, public_keys_content"]),
])
def test_failures(run, args, needles):
    rc, result = run(args)
    assert rc == 1 and result["failed"] is True
    for needle in needles:
        assert needle in result["msg"]


def test_failure_names_source_and_block(run, tmp_path):
    rc, result = run({"public_keys": [fixture("rsa-2048.pub.pem"), fixture("ed25519.pub.pem")],
                      "dest": str(tmp_path / "jwks.json")})
    assert rc == 1 and result["source"] == fixture("ed25519.pub.pem") and result["block"] == 1
    assert not (tmp_path / "jwks.json").exists()


def test_dest_in_missing_directory(run, tmp_path):
    rc, result = run({"public_keys": [fixture("rsa-2048.pub.pem")], "dest": str(tmp_path / "no" / "jwks.json")})
    assert rc == 1 and "does not exist" in result["msg"]


def test_missing_cryptography(run, monkeypatch):
    monkeypatch.setattr(jwks_generate, "HAS_CRYPTOGRAPHY", False)
    monkeypatch.setattr(jwks_generate, "CRYPTOGRAPHY_IMPORT_ERROR", "Traceback: No module named 'cryptography'")
    rc, result = run({"public_keys": [fixture("rsa-2048.pub.pem")]})
    assert rc == 1 and "cryptography" in result["msg"]
