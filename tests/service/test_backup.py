"""Backups, restores and off-site copies against real LMDB files and the session's SoftHSM2 token."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import lmdb
import pytest

from firmware_app.service.backup import (
    DATA_FILE,
    MANIFEST_FILE,
    SIGNATURE_FILE,
    BackupError,
    BackupRejected,
    backup_blocking,
    restore_blocking,
    verify_backup,
)
from firmware_app.service.backup_manifest import encode_manifest, signed_bytes
from firmware_app.service.identity_file import IdentityFile
from firmware_app.service.keyring import Keyring
from firmware_app.service.offsite import (
    generate_recipient_keypair,
    open_offsite_blocking,
    seal_offsite_blocking,
)
from hsm.keys import Signer
from hsm.labels import SIGNING_LABEL
from peers.population import generate
from storage import layout
from storage.store import Store, read_copy

REPO = Path(__file__).resolve().parents[2]
TODAY = "20261126"
N = 1_500
SMALL_CHUNK_BYTES = 4096


@pytest.fixture
def residents():
    return list(generate(N, seed=11, today=TODAY))


@pytest.fixture
def identity(token, store, clock):
    keyring = Keyring(token, store, clock)
    keyring.open_blocking()
    return IdentityFile(store, keyring, clock)


@pytest.fixture
def loaded(identity, residents, store):
    assert identity.load_blocking(residents, batch_records=500) == N
    # Cursors as the intake and the outboxes store them.
    def cursors(w):
        w.put(layout.INBOX, b"inbox:register", layout.pack_u64(4_321))
        w.put(layout.META, b"outbox_next:outbox_pref", layout.pack_u64(77))
        w.put(layout.META, b"outbox_acked:outbox_pref", layout.pack_u64(70))

    store.write(cursors)
    return identity


@pytest.fixture
def signer(token):
    return Signer(token, SIGNING_LABEL)


@pytest.fixture
def public_key(signer):
    return signer.public_key_der()


@pytest.fixture
def backup(loaded, store, signer, clock, tmp_path):
    out = tmp_path / "backup"
    backup_blocking(store, signer, out, clock=clock, note="nightly")
    return out


def _dump(env_dir: Path) -> dict[bytes, list[tuple[bytes, bytes]]]:
    """Every named database of a copy, with every entry (duplicates included), read raw."""
    env = lmdb.open(str(env_dir), readonly=True, lock=False, max_dbs=64)
    try:
        with env.begin() as txn:
            names = [k for k, _ in txn.cursor()]
        out = {}
        for name in names:
            db = env.open_db(name, create=False)
            with env.begin(db=db) as txn:
                out[name] = list(txn.cursor())
        return out
    finally:
        env.close()


def _live_dump(store: Store) -> dict[bytes, list[tuple[bytes, bytes]]]:
    with store.read() as r:
        return {name.encode(): list(r.items(name)) for name in layout.ALL}


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


# --- backup and manifest ---------------------------------------------------------------------


def test_backup_files_are_private_and_the_manifest_says_what_the_copy_holds(backup, public_key, signer, store):
    assert oct(backup.stat().st_mode & 0o777) == "0o700"
    assert sorted(p.name for p in backup.iterdir()) == sorted([DATA_FILE, MANIFEST_FILE, SIGNATURE_FILE])
    for p in backup.iterdir():
        assert oct(p.stat().st_mode & 0o777) == "0o600"
    manifest = verify_backup(backup, public_key)
    assert manifest.note == "nightly"
    assert manifest.created_at.startswith("2026-11-26T09:00")
    assert manifest.store.schema_version == layout.SCHEMA_VERSION.decode()
    assert manifest.store.entries[layout.IDENTITY] == N
    assert manifest.store.entries[layout.IX_NUMBER] > 0
    assert manifest.store.inbox == {"register": 4_321}
    assert manifest.store.outbox_cursors == {"outbox_next:outbox_pref": 77, "outbox_acked:outbox_pref": 70}
    assert manifest.store.keys, "the wrapped data keys are listed"
    assert all(k.wrapped_by.startswith("cs-") for k in manifest.store.keys)
    assert manifest.store.kek_check_sha256 is not None
    assert manifest.data_size_bytes == (backup / DATA_FILE).stat().st_size
    assert manifest.data_size_bytes <= store.file_bytes(), "the copy holds the used pages only"
    # Canonical: the file is exactly the re-encoded manifest, and readable JSON.
    raw = (backup / MANIFEST_FILE).read_bytes()
    assert raw == encode_manifest(manifest)
    assert b'\n  "created_at"' in raw
    assert signer.verify(signed_bytes(raw), (backup / SIGNATURE_FILE).read_bytes()) is None


def test_backup_refuses_a_non_empty_directory(loaded, store, signer, clock, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "something").write_bytes(b"x")
    with pytest.raises(BackupError, match="not empty"):
        backup_blocking(store, signer, out, clock=clock)
    assert sorted(p.name for p in out.iterdir()) == ["something"]
    assert _siblings(out) == []


def test_backup_into_an_existing_empty_directory(loaded, store, signer, clock, public_key, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    backup_blocking(store, signer, out, clock=clock)
    verify_backup(out, public_key)


def test_no_personal_data_in_plaintext_in_the_backup(backup, residents):
    raw = (backup / DATA_FILE).read_bytes() + (backup / MANIFEST_FILE).read_bytes()
    for record in residents:
        assert record.name_kanji.encode() not in raw
        assert record.name_kana.encode() not in raw
        assert record.address.encode() not in raw
        if record.individual_number:
            assert record.individual_number.encode() not in raw


def test_backup_while_another_thread_writes_is_consistent(loaded, store, identity, signer, clock, public_key, tmp_path):
    more = list(generate(3_000, seed=11, start=N, today=TODAY))
    done = threading.Event()
    loaded_more = []

    def writer():
        try:
            loaded_more.append(identity.load_blocking(more, batch_records=100))
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    manifests = []
    try:
        while not done.is_set():
            manifests.append(backup_blocking(store, signer, tmp_path / f"b{len(manifests)}", clock=clock))
    finally:
        thread.join()
    assert len(manifests) >= 2, "backups were taken while the writer ran"
    manifests.append(backup_blocking(store, signer, tmp_path / f"b{len(manifests)}", clock=clock))
    assert loaded_more == [len(more)]
    for i, manifest in enumerate(manifests):
        assert verify_backup(tmp_path / f"b{i}", public_key) == manifest
        with read_copy(tmp_path / f"b{i}") as r:
            # A committed state: every resident in the copy has its number index entry with it.
            assert r.count(layout.IDENTITY) == manifest.store.entries[layout.IDENTITY]
            assert r.count(layout.IX_NUMBER) == manifest.store.entries[layout.IX_NUMBER]
        assert N <= manifest.store.entries[layout.IDENTITY] <= N + len(more)
        assert manifest.store.entries[layout.IDENTITY] % 100 == 0, "whole load transactions only"
    assert manifests[-1].store.entries[layout.IDENTITY] == N + len(more)


# --- verification refuses what was altered ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "where", "why"),
    [
        (DATA_FILE, "middle", "data file digest does not match the manifest"),
        (DATA_FILE, "start", "data file digest does not match the manifest"),
        (MANIFEST_FILE, "middle", "manifest signature does not verify"),
        (SIGNATURE_FILE, "start", "manifest signature does not verify"),
        (SIGNATURE_FILE, "end", "manifest signature does not verify"),
    ],
)
def test_one_altered_byte_is_refused_naming_what(backup, public_key, name, where, why):
    path = backup / name
    size = path.stat().st_size
    _flip(path, {"start": 0, "middle": size // 2, "end": size - 1}[where])
    with pytest.raises(BackupRejected) as err:
        verify_backup(backup, public_key)
    assert err.value.what == why


@pytest.mark.parametrize("name", [DATA_FILE, MANIFEST_FILE, SIGNATURE_FILE])
def test_a_missing_file_is_refused_naming_it(backup, public_key, name):
    (backup / name).unlink()
    with pytest.raises(BackupRejected, match=f"backup is missing {name}"):
        verify_backup(backup, public_key)


def test_a_truncated_or_extended_data_file_is_refused_by_size(backup, public_key):
    path = backup / DATA_FILE
    with open(path, "ab") as f:
        f.write(b"\0" * 4096)
    with pytest.raises(BackupRejected, match=r"data file size \d+ bytes does not match the manifest's \d+"):
        verify_backup(backup, public_key)
    os.truncate(path, 4096)
    with pytest.raises(BackupRejected, match="data file size"):
        verify_backup(backup, public_key)


def test_another_key_s_signature_is_refused(backup):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = other.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(BackupRejected, match="manifest signature does not verify"):
        verify_backup(backup, der)


def test_a_signed_but_malformed_manifest_is_refused(backup, public_key, signer):
    for body in (b"not json", b'{"format_version": 1}', (backup / MANIFEST_FILE).read_bytes().replace(b"\n  ", b"\n ")):
        (backup / MANIFEST_FILE).write_bytes(body)
        (backup / SIGNATURE_FILE).write_bytes(signer.sign(signed_bytes(body)))
        with pytest.raises(BackupRejected, match="manifest is malformed"):
            verify_backup(backup, public_key)


def test_a_signed_manifest_that_misdescribes_the_data_is_refused(backup, public_key, signer):
    import msgspec

    manifest = verify_backup(backup, public_key)
    entries = dict(manifest.store.entries)
    entries[layout.IDENTITY] += 1
    wrong = msgspec.structs.replace(manifest, store=msgspec.structs.replace(manifest.store, entries=entries))
    body = encode_manifest(wrong)
    (backup / MANIFEST_FILE).write_bytes(body)
    (backup / SIGNATURE_FILE).write_bytes(signer.sign(signed_bytes(body)))
    with pytest.raises(BackupRejected, match=r"data file content does not match the manifest \(entries\)"):
        verify_backup(backup, public_key)


# --- restore ----------------------------------------------------------------------------------


def test_restore_gives_the_same_store_byte_for_byte_and_readable_records(backup, store, residents, token, clock, public_key, tmp_path):
    target = tmp_path / "restored"
    manifest = restore_blocking(backup, target, public_key)
    assert manifest == verify_backup(backup, public_key)
    assert oct(target.stat().st_mode & 0o777) == "0o700"
    assert oct((target / DATA_FILE).stat().st_mode & 0o777) == "0o600"
    restored = _dump(target)
    assert set(restored) == {name.encode() for name in layout.ALL}
    assert restored == _live_dump(store)
    assert _siblings(target) == []

    again = Store(target)
    try:
        keyring = Keyring(token, again, clock)
        keyring.open_blocking()
        identity = IdentityFile(again, keyring, clock)
        assert identity.count_blocking() == N
        for record in residents[::37]:
            current = identity.get_blocking(record.resident_code)
            assert current is not None and current.record == record
        with again.read() as r:
            assert layout.unpack_u64(r.get(layout.INBOX, b"inbox:register")) == 4_321, "the register resumes from here"
    finally:
        again.close()


def test_an_index_key_with_a_sub_database_of_duplicates_is_backed_up(loaded, store, signer, clock, public_key, tmp_path):
    """A key with thousands of duplicates makes a sub-database (LEAF2 pages in a dupfixed index),
    as every index has at a million residents; LMDB 0.9.36's compacting copy crashes on it."""
    many = [(b"\x01" * 8, i.to_bytes(5, "big")) for i in range(5_000)]
    store.write(lambda w: w.put_sorted(layout.IX_BIRTH, many))
    backup_blocking(store, signer, tmp_path / "b", clock=clock)
    restore_blocking(tmp_path / "b", tmp_path / "r", public_key)
    assert _dump(tmp_path / "r") == _live_dump(store)


def test_restore_never_overwrites_without_force(backup, public_key, tmp_path):
    target = tmp_path / "existing"
    target.mkdir()
    (target / "data.mdb").write_bytes(b"the old store")
    with pytest.raises(BackupError, match="not empty"):
        restore_blocking(backup, target, public_key)
    assert (target / "data.mdb").read_bytes() == b"the old store"
    restore_blocking(backup, target, public_key, force=True)
    assert (target / "data.mdb").read_bytes() == (backup / DATA_FILE).read_bytes()
    assert _siblings(target) == []


def test_a_refused_restore_leaves_the_target_untouched_and_no_partial_directory(backup, public_key, tmp_path):
    target = tmp_path / "existing"
    target.mkdir()
    (target / "data.mdb").write_bytes(b"the old store")
    _flip(backup / DATA_FILE, (backup / DATA_FILE).stat().st_size // 3)
    with pytest.raises(BackupRejected, match="data file digest"):
        restore_blocking(backup, target, public_key, force=True)
    assert (target / "data.mdb").read_bytes() == b"the old store"
    assert _siblings(target) == []
    fresh = tmp_path / "fresh"
    with pytest.raises(BackupRejected):
        restore_blocking(backup, fresh, public_key)
    assert not fresh.exists()
    assert _siblings(fresh) == []


def test_restore_refuses_a_store_another_process_has_open(backup, public_key, tmp_path):
    target = tmp_path / "in-use"
    restore_blocking(backup, target, public_key)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import lmdb, sys, time; e = lmdb.open(sys.argv[1], max_dbs=64); print('open', flush=True); time.sleep(60)", str(target)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(BackupError, match="open in another process"):
            restore_blocking(backup, target, public_key, force=True)
    finally:
        holder.kill()
        holder.wait()
    restore_blocking(backup, target, public_key, force=True)


# --- off-site ---------------------------------------------------------------------------------


@pytest.fixture
def recipient():
    return generate_recipient_keypair()


@pytest.fixture
def sealed(backup, recipient, tmp_path):
    out = tmp_path / "offsite.bin"
    seal_offsite_blocking(backup, recipient[1], out, chunk_bytes=SMALL_CHUNK_BYTES)
    return out


def test_offsite_round_trip(backup, sealed, recipient, public_key, tmp_path):
    assert oct(sealed.stat().st_mode & 0o777) == "0o600"
    out = tmp_path / "opened"
    assert sorted(open_offsite_blocking(sealed, recipient[0], out)) == sorted([DATA_FILE, MANIFEST_FILE, SIGNATURE_FILE])
    for name in (DATA_FILE, MANIFEST_FILE, SIGNATURE_FILE):
        assert (out / name).read_bytes() == (backup / name).read_bytes()
        assert oct((out / name).stat().st_mode & 0o777) == "0o600"
    verify_backup(out, public_key)
    restore_blocking(out, tmp_path / "restored", public_key)


def test_offsite_with_the_default_chunk_size(backup, recipient, public_key, tmp_path):
    seal_offsite_blocking(backup, recipient[1], tmp_path / "o.bin")
    open_offsite_blocking(tmp_path / "o.bin", recipient[0], tmp_path / "opened")
    verify_backup(tmp_path / "opened", public_key)


def test_no_plaintext_in_the_offsite_file(sealed, residents, backup):
    raw = sealed.read_bytes()
    assert b"data.mdb" not in raw and b"created_at" not in raw
    for record in residents[::5]:
        assert record.name_kanji.encode() not in raw
        assert record.address.encode() not in raw
        if record.individual_number:
            assert record.individual_number.encode() not in raw


def _chunk(n: int) -> tuple[int, int]:
    """Byte range of sealed chunk ``n`` (header 45 bytes, chunks of SMALL_CHUNK_BYTES + tag)."""
    start = 45 + n * (SMALL_CHUNK_BYTES + 16)
    return start, start + SMALL_CHUNK_BYTES + 16


def _refused(sealed: Path, key: bytes, out: Path, match: str) -> None:
    with pytest.raises(BackupRejected, match=match):
        open_offsite_blocking(sealed, key, out)
    assert not out.exists()
    assert _siblings(out) == []


def test_offsite_wrong_key_is_refused(sealed, tmp_path):
    other_private, _ = generate_recipient_keypair()
    _refused(sealed, other_private, tmp_path / "o", "wrong recipient key")


@pytest.mark.parametrize(("offset", "why"), [(0, "not an off-site backup"), (8, "version"), (9, "chunk size"), (11, "header or first chunk was altered"), (20, "wrong recipient key"), (45, "wrong recipient key"), (45 + 3 * (SMALL_CHUNK_BYTES + 16) + 100, "chunk 3 does not authenticate")])
def test_offsite_flipped_byte_is_refused(sealed, recipient, tmp_path, offset, why):
    _flip(sealed, offset)
    _refused(sealed, recipient[0], tmp_path / "o", why)


def test_offsite_last_byte_flipped_is_refused(sealed, recipient, tmp_path):
    _flip(sealed, sealed.stat().st_size - 1)
    _refused(sealed, recipient[0], tmp_path / "o", "does not authenticate")


def test_offsite_truncation_is_refused(sealed, recipient, tmp_path):
    data = sealed.read_bytes()
    at_boundary = _chunk(5)[0]
    sealed.write_bytes(data[:at_boundary])
    _refused(sealed, recipient[0], tmp_path / "a", "off-site file is truncated")
    sealed.write_bytes(data[: at_boundary + 100])
    _refused(sealed, recipient[0], tmp_path / "b", "does not authenticate")
    sealed.write_bytes(data[:-1])
    _refused(sealed, recipient[0], tmp_path / "c", "does not authenticate")
    sealed.write_bytes(data[:30])
    _refused(sealed, recipient[0], tmp_path / "d", "too short")


def test_offsite_reordered_dropped_or_appended_chunks_are_refused(sealed, recipient, tmp_path):
    data = sealed.read_bytes()
    a, b = _chunk(2), _chunk(3)
    swapped = data[: a[0]] + data[b[0] : b[1]] + data[a[0] : a[1]] + data[b[1] :]
    sealed.write_bytes(swapped)
    _refused(sealed, recipient[0], tmp_path / "a", "chunk 2 does not authenticate")
    sealed.write_bytes(data[: a[0]] + data[a[1] :])
    _refused(sealed, recipient[0], tmp_path / "b", "chunk 2 does not authenticate")
    sealed.write_bytes(data + data[a[0] : a[1]])
    _refused(sealed, recipient[0], tmp_path / "c", "does not authenticate")


def test_offsite_refuses_a_non_empty_output_directory(sealed, recipient, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "x").write_bytes(b"x")
    with pytest.raises(BackupError, match="not empty"):
        open_offsite_blocking(sealed, recipient[0], out)


# --- the cs-backup command ---------------------------------------------------------------------


def test_cs_backup_command(tmp_path):
    from peers.cs_process import preload_store, provision_cs_token
    from peers.rig import free_port, make_pki, write_config

    hsm, public_der = provision_cs_token(tmp_path / "hsm")
    store_path = tmp_path / "store"
    preload_store(store_path, hsm, population=200, seed=3, today=TODAY, timeout_s=120)
    config = write_config(
        tmp_path / "csd.toml", store=store_path, hsm=hsm, pki=make_pki(tmp_path / "pki"),
        listen_port=free_port(), prefecture_port=free_port(), national_port=free_port(),
    )
    public_key = tmp_path / "hsm" / "cs-signing-key.der"
    assert public_key.read_bytes() == public_der
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    env["SOFTHSM2_CONF"] = str(hsm.softhsm_conf)

    def cs_backup(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "firmware_app.backup_cli", *map(str, args)],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        )

    backup = tmp_path / "backup"
    done = cs_backup("--config", config, "backup", "--out", backup, "--note", "test")
    assert done.returncode == 0, done.stderr
    assert "200 residents" in done.stdout and len(done.stdout.splitlines()) == 1
    assert cs_backup("verify", backup, "--public-key", public_key).returncode == 0

    refused = cs_backup("--config", config, "restore", backup, "--public-key", public_key)
    assert refused.returncode == 1 and "not empty" in refused.stderr and len(refused.stderr.splitlines()) == 1
    restored = cs_backup("--config", config, "restore", backup, "--public-key", public_key, "--force")
    assert restored.returncode == 0, restored.stderr
    assert "register resumes" in restored.stdout

    private, public = tmp_path / "recipient.pem", tmp_path / "recipient.pub.pem"
    assert cs_backup("keygen-offsite", "--out-private", private, "--out-public", public).returncode == 0
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    sealed = tmp_path / "offsite.bin"
    assert cs_backup("seal-offsite", backup, "--recipient", public, "--out", sealed, "--public-key", public_key).returncode == 0
    opened = tmp_path / "opened"
    assert cs_backup("open-offsite", sealed, "--key", private, "--out", opened).returncode == 0
    assert cs_backup("verify", opened, "--public-key", public_key).returncode == 0

    _flip(backup / DATA_FILE, 5000)
    bad = cs_backup("verify", backup, "--public-key", public_key)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "cs-backup: verify: data file digest does not match the manifest"
    missing = cs_backup("backup", "--out", tmp_path / "x")
    assert missing.returncode == 1 and "--config is required" in missing.stderr
