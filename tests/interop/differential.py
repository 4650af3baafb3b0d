"""Differential check of pullguard's TUF client against python-tuf's ngclient (issue 10).

Usage: ``python differential.py --pullguard BIN --seed N --cases N --out REPORT.json``

Each case is a valid repository, written here as JSON and signed with securesystemslib (so
that mutations python-tuf's own API would refuse to build can be made), served over HTTP on
127.0.0.1. Both clients start from its root v1 and refresh and download a target (stage 1,
which both must accept); then the repository publishes its next state with one mutation
(stage 2: versions, expiries, signatures, thresholds, key types, delegations and paths,
hashes and lengths, root rotations, role names, document structure) and both clients
refresh from their stage-1 state and download the new target. The decisions (accept or
reject) and the versions each client trusts afterwards are compared.

Disagreements that are kept on purpose are listed in ``KEPT`` with the reason and the spec
section that makes pullguard the stricter one; any other disagreement fails the check. The
report lists every case; the summary table goes to stdout.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata
from tuf.ngclient import Updater

# Disagreements kept on purpose: mutation -> (what pullguard decides, why).
KEPT = {
    "rotate_snapshot_key_and_reset_its_version": (
        "accept",
        "TUF 5.3.11: when a new root rotates the snapshot keys, the client deletes its trusted "
        "timestamp and snapshot, so a snapshot signed by the new key may start again at "
        "version 1 (fast-forward attack recovery). pullguard does; python-tuf 7 only drops a "
        "local snapshot that no longer verifies and keeps the timestamp, whose snapshot "
        "version then refuses the new one (5.4.3.2). pullguard follows the spec's letter.",
    ),
    "threshold_2_one_signature": (
        "reject",
        "Both refuse the timestamp; the new root gave timestamp a second key (threshold 2), "
        "a rotation of its keys, so TUF 5.3.11 has pullguard delete its trusted timestamp "
        "and snapshot. python-tuf keeps the old snapshot, which root still verifies: it "
        "trusts one role more afterwards.",
    ),
    "keytype_declared_wrong": (
        "reject",
        "Both refuse the update. The new root declares a key whose bytes are not a key of the "
        "declared type; pullguard refuses that root when it reads it (a root must list only "
        "usable keys: TUF 4.2 KEYVAL, 5.3.4 verifies the new root as a whole) and keeps "
        "root v1; python-tuf trusts root v2 and fails later, at the timestamp that key signs.",
    ),
    "duplicate_json_key": (
        "reject",
        "pullguard refuses a document with a duplicate object key before it checks a "
        "signature (RFC 8259 §4 leaves duplicates' meaning open; two parsers may read two "
        "documents, TUF §4.2 signs one canonical form); python-tuf's json.loads keeps the "
        "last value.",
    ),
}

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


FUTURE = iso(NOW + timedelta(days=30))
PAST = iso(NOW - timedelta(days=1))


# ----- keys --------------------------------------------------------------------------------


class Keys:
    """A deterministic pool of keys of each type (RSA generated once per run)."""

    def __init__(self, rng: random.Random):
        self.pool = {
            "ed25519": [
                CryptoSigner(ed25519.Ed25519PrivateKey.from_private_bytes(bytes([i + 1]) * 32))
                for i in range(12)
            ],
            "ecdsa": [
                CryptoSigner(ec.derive_private_key(1000 + i, ec.SECP256R1())) for i in range(4)
            ],
            "rsa": [CryptoSigner.generate_rsa() for _ in range(4)],
        }
        self.rng = rng
        self.used: set[str] = set()

    def fresh(self, keytype: str = "ed25519") -> CryptoSigner:
        """A key not yet used in the current case."""
        for signer in self.pool[keytype]:
            if signer.public_key.keyid not in self.used:
                self.used.add(signer.public_key.keyid)
                return signer
        raise RuntimeError(f"key pool of {keytype} exhausted")

    def reset(self) -> None:
        self.used = set()


def key_dict(signer: CryptoSigner) -> dict:
    return signer.public_key.to_dict()


def keyid(signer: CryptoSigner) -> str:
    return signer.public_key.keyid


def sign(signed: dict, signers: list[CryptoSigner]) -> dict:
    payload = encode_canonical(signed).encode()
    sigs = []
    for s in signers:
        sig = s.sign(payload)
        sigs.append({"keyid": sig.keyid, "sig": sig.signature})
    return {"signed": signed, "signatures": sigs}


# ----- a repository ------------------------------------------------------------------------


class Repo:
    """One case's repository: signed parts, who signs them, and what is served."""

    def __init__(self, base: Path, keys: Keys, rng: random.Random):
        self.base = base
        self.keys = keys
        self.rng = rng
        self.meta_hashes = rng.random() < 0.5
        keytypes = ["ed25519"] * 6 + ["ecdsa", "rsa"]
        self.signers = {r: [keys.fresh(rng.choice(keytypes))] for r in ("root", "timestamp", "snapshot", "targets")}
        self.thresholds = {r: 1 for r in self.signers}
        if rng.random() < 0.2:
            self.signers["root"].append(keys.fresh())
            self.thresholds["root"] = 2
        self.root_version = 1
        self.versions = {"timestamp": 2, "snapshot": 2, "targets": 2}
        self.targets: dict[str, dict[str, dict]] = {"targets": {}}
        self.delegations: dict[str, dict] = {}  # role -> {paths | path_hash_prefixes, terminating, signer}
        self.files: dict[str, bytes] = {}  # served path under base -> bytes
        self.extra_root_keys: dict[str, dict] = {}
        self.spec_version = "1.0.31"

    # targets and delegations

    def add_target(self, role: str, path: str, data: bytes, hashes=("sha256",)) -> None:
        info = {"length": len(data), "hashes": {h: hashlib.new(h, data).hexdigest() for h in hashes}}
        self.targets.setdefault(role, {})[path] = info
        dirname, sep, base = path.rpartition("/")
        for h in info["hashes"].values():
            self.files[f"targets/{dirname}{sep}{h}.{base}"] = data

    def delegate(self, name: str, spec: dict) -> None:
        spec = dict(spec)
        spec.setdefault("terminating", False)
        spec.setdefault("signer", self.keys.fresh())
        self.delegations[name] = spec
        self.targets.setdefault(name, {})
        self.versions.setdefault(name, 2)

    # documents

    def root_signed(self) -> dict:
        keys = {}
        roles = {}
        for role, signers in self.signers.items():
            for s in signers:
                keys[keyid(s)] = key_dict(s)
            roles[role] = {"keyids": [keyid(s) for s in signers], "threshold": self.thresholds[role]}
        keys.update(self.extra_root_keys)
        return {
            "_type": "root", "spec_version": self.spec_version, "version": self.root_version,
            "expires": FUTURE, "consistent_snapshot": True, "keys": keys, "roles": roles,
        }

    def targets_signed(self, role: str) -> dict:
        signed = {
            "_type": "targets", "spec_version": self.spec_version, "version": self.versions[role],
            "expires": FUTURE, "targets": copy.deepcopy(self.targets.get(role, {})),
        }
        if role == "targets" and self.delegations:
            keys, roles = {}, []
            for name, d in self.delegations.items():
                keys[keyid(d["signer"])] = key_dict(d["signer"])
                entry = {"name": name, "keyids": [keyid(d["signer"])], "threshold": 1,
                         "terminating": d["terminating"]}
                for field in ("paths", "path_hash_prefixes"):
                    if field in d:
                        entry[field] = d[field]
                roles.append(entry)
            signed["delegations"] = {"keys": keys, "roles": roles}
        return signed

    def role_signers(self, role: str) -> list[CryptoSigner]:
        if role in self.delegations:
            return [self.delegations[role]["signer"]]
        return list(self.signers[role])

    def file_of(self, role: str, version: int) -> str:
        if role == "timestamp":
            return "metadata/timestamp.json"
        return f"metadata/{version}.{quote(role, '')}.json"

    def meta_entry(self, version: int, data: bytes, with_hashes: bool) -> dict:
        entry = {"version": version}
        if with_hashes:
            entry["length"] = len(data)
            entry["hashes"] = {"sha256": hashlib.sha256(data).hexdigest()}
        return entry

    def publish(self, hook, include_root: bool) -> None:
        """Signs and serves the current state: root (when `include_root`), the targets roles,
        snapshot and timestamp. `hook(stage, role, value)` may change each step's value."""
        if include_root:
            signed = hook("signed", "root", self.root_signed())
            signers = hook("signers", "root", self.root_signers())
            self.serve("root", self.root_version, signed, signers, hook)
        target_bytes = {}
        for role in ["targets", *self.delegations]:
            signed = hook("signed", role, self.targets_signed(role))
            signers = hook("signers", role, self.role_signers(role))
            target_bytes[role] = self.serve(role, self.versions[role], signed, signers, hook)
        meta = {f"{r}.json": self.meta_entry(self.versions[r], b, self.meta_hashes) for r, b in target_bytes.items()}
        snapshot = {"_type": "snapshot", "spec_version": self.spec_version, "version": self.versions["snapshot"],
                    "expires": FUTURE, "meta": meta}
        snapshot = hook("signed", "snapshot", snapshot)
        snap_bytes = self.serve("snapshot", self.versions["snapshot"], snapshot,
                                hook("signers", "snapshot", self.role_signers("snapshot")), hook)
        timestamp = {"_type": "timestamp", "spec_version": self.spec_version, "version": self.versions["timestamp"],
                     "expires": FUTURE,
                     "meta": {"snapshot.json": self.meta_entry(self.versions["snapshot"], snap_bytes, self.meta_hashes)}}
        timestamp = hook("signed", "timestamp", timestamp)
        self.serve("timestamp", self.versions["timestamp"], timestamp,
                   hook("signers", "timestamp", self.role_signers("timestamp")), hook)
        hook("files", None, self.files)

    def root_signers(self) -> list[CryptoSigner]:
        return list(self.signers["root"]) + getattr(self, "old_root_signers", [])

    def serve(self, role: str, version: int, signed: dict, signers: list, hook) -> bytes:
        envelope = hook("envelope", role, sign(signed, signers))
        data = hook("bytes", role, json.dumps(envelope).encode())
        self.files[self.file_of(role, version)] = data
        return data

    def write(self) -> None:
        for path, data in self.files.items():
            out = self.base / path
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)


# ----- mutations ---------------------------------------------------------------------------
# Each mutation is (prepare(repo, rng), hook(stage, role, value) -> value, expected) where
# `prepare` changes the stage-2 repository state before publishing and `hook` edits what is
# signed or served. `expected` is what the TUF spec asks for ("accept"/"reject"); it is
# reported, and checked only as far as both clients agree.


def nothing(_repo, _rng):
    return None


def on(stage, role, fn):
    """A hook that applies `fn(value)` at one stage for one role."""
    def hook(s, r, value):
        if s == stage and (role is None or r == role):
            return fn(value)
        return value
    return hook


def set_field(field, value):
    def fn(signed):
        signed[field] = value
        return signed
    return fn


def flip_sig(envelope):
    if envelope["signatures"]:
        sig = envelope["signatures"][0]["sig"]
        sig = ("1" if sig[0] == "0" else "0") + sig[1:]
        envelope["signatures"][0]["sig"] = sig
    return envelope


MUTATIONS: dict[str, tuple] = {}


def mutation(name, expected):
    def register(fn):
        MUTATIONS[name] = (fn, expected)
        return fn
    return register


@mutation("none", "accept")
def m_none(repo, rng):
    return None


def version_mutation(role, version):
    def prepare(repo, rng):
        repo.versions[role] = version
        return None
    return prepare


MUTATIONS["timestamp_version_equal"] = (version_mutation("timestamp", 2), "reject")
MUTATIONS["timestamp_version_lower"] = (version_mutation("timestamp", 1), "reject")
MUTATIONS["snapshot_version_lower"] = (version_mutation("snapshot", 1), "reject")
MUTATIONS["targets_version_lower"] = (version_mutation("targets", 1), "reject")
MUTATIONS["targets_version_jump"] = (version_mutation("targets", 40), "accept")


@mutation("delegated_version_lower", "reject")
def m_delegated_lower(repo, rng):
    repo.versions["team"] = 1
    return None


@mutation("snapshot_drops_a_role", "reject")
def m_snapshot_drops(repo, rng):
    return on("signed", "snapshot", lambda s: (s["meta"].pop("team.json", None), s)[1])


@mutation("timestamp_pins_an_unserved_snapshot", "reject")
def m_ts_unserved(repo, rng):
    def fn(s):
        s["meta"]["snapshot.json"]["version"] = 9
        s["meta"]["snapshot.json"].pop("hashes", None)
        s["meta"]["snapshot.json"].pop("length", None)
        return s
    return on("signed", "timestamp", fn)


@mutation("snapshot_pins_other_targets_version", "reject")
def m_snapshot_pin_mismatch(repo, rng):
    # The snapshot pins targets v7; the file served as 7.targets.json says version 3.
    def files(f):
        f["metadata/7.targets.json"] = f[repo.file_of("targets", 3)]
        return f
    def snap(s):
        s["meta"]["targets.json"] = {"version": 7}
        return s
    hooks = [on("signed", "snapshot", snap), on("files", None, files)]
    return lambda st, r, v: hooks[1](st, r, hooks[0](st, r, v))


for _role in ("timestamp", "snapshot", "targets", "team", "root"):
    MUTATIONS[f"expired_{_role}"] = (
        (lambda role: lambda repo, rng: (setattr(repo, "root_version", 2) if role == "root" else None,
                                         on("signed", role, set_field("expires", PAST)))[1])(_role),
        "reject",
    )

for _role in ("timestamp", "snapshot", "targets", "team", "root"):
    def _unsigned(role):
        def prepare(repo, rng):
            if role == "root":
                repo.root_version = 2
            return on("envelope", role, lambda e: {**e, "signatures": []})
        return prepare

    def _corrupt(role):
        def prepare(repo, rng):
            if role == "root":
                repo.root_version = 2
            return on("envelope", role, flip_sig)
        return prepare

    def _wrong_key(role):
        def prepare(repo, rng):
            if role == "root":
                repo.root_version = 2
                repo.old_root_signers = []
            stranger = repo.keys.fresh()
            return on("signers", role, lambda _s: [stranger])
        return prepare

    MUTATIONS[f"unsigned_{_role}"] = (_unsigned(_role), "reject")
    MUTATIONS[f"corrupt_signature_{_role}"] = (_corrupt(_role), "reject")
    MUTATIONS[f"wrong_key_{_role}"] = (_wrong_key(_role), "reject")


@mutation("extra_signature_of_unknown_key", "accept")
def m_extra_sig(repo, rng):
    stranger = repo.keys.fresh()
    def fn(e):
        extra = sign(e["signed"], [stranger])["signatures"][0]
        e["signatures"].append(extra)
        return e
    return on("envelope", "snapshot", fn)


@mutation("signature_under_another_keyid", "reject")
def m_keyid_swap(repo, rng):
    other = keyid(repo.signers["targets"][0])
    def fn(e):
        for s in e["signatures"]:
            s["keyid"] = other
        return e
    return on("envelope", "snapshot", fn)


@mutation("same_key_signs_twice_for_threshold_2", "reject")
def m_duplicate_sig(repo, rng):
    repo.root_version = 2
    repo.signers["targets"].append(repo.keys.fresh())
    repo.thresholds["targets"] = 2
    first = repo.signers["targets"][0]
    return on("signers", "targets", lambda _s: [first, first])


@mutation("threshold_2_met", "accept")
def m_threshold_met(repo, rng):
    repo.root_version = 2
    repo.signers["snapshot"].append(repo.keys.fresh())
    repo.thresholds["snapshot"] = 2
    return None


@mutation("threshold_2_one_signature", "reject")
def m_threshold_unmet(repo, rng):
    repo.root_version = 2
    repo.signers["timestamp"].append(repo.keys.fresh())
    repo.thresholds["timestamp"] = 2
    first = repo.signers["timestamp"][0]
    return on("signers", "timestamp", lambda _s: [first])


@mutation("threshold_zero", "reject")
def m_threshold_zero(repo, rng):
    repo.root_version = 2
    repo.thresholds["snapshot"] = 0
    return None


@mutation("threshold_above_key_count", "reject")
def m_threshold_high(repo, rng):
    repo.root_version = 2
    repo.thresholds["targets"] = 2
    return None


@mutation("root_threshold_unmet_by_new_root", "reject")
def m_root_threshold(repo, rng):
    repo.root_version = 2
    repo.old_root_signers = []
    old = repo.signers["root"][0]
    repo.signers["root"] = [old, repo.keys.fresh()]
    repo.thresholds["root"] = 2
    return on("signers", "root", lambda _s: [old])


@mutation("keytype_declared_wrong", "reject")
def m_keytype(repo, rng):
    repo.root_version = 2
    kid = keyid(repo.signers["timestamp"][0])
    def fn(s):
        key = s["keys"][kid]
        if key["keytype"] == "ed25519":
            key["keytype"], key["scheme"] = "ecdsa", "ecdsa-sha2-nistp256"
        else:
            key["keytype"], key["scheme"] = "ed25519", "ed25519"
        return s
    return on("signed", "root", fn)


@mutation("scheme_declared_wrong", "reject")
def m_scheme(repo, rng):
    repo.root_version = 2
    kid = keyid(repo.signers["snapshot"][0])
    def fn(s):
        key = s["keys"][kid]
        key["scheme"] = "rsassa-pss-sha256" if key["keytype"] != "rsa" else "ed25519"
        return s
    return on("signed", "root", fn)


@mutation("unused_key_of_unknown_type", "accept")
def m_unknown_keytype(repo, rng):
    repo.root_version = 2
    repo.extra_root_keys["ab" * 32] = {"keytype": "frobnicate", "scheme": "frob", "keyval": {"public": "00"}}
    return None


@mutation("rotate_root_signed_by_both", "accept")
def m_rotate_both(repo, rng):
    repo.root_version = 2
    repo.old_root_signers = list(repo.signers["root"])
    repo.signers["root"] = [repo.keys.fresh()]
    repo.thresholds["root"] = 1
    return None


@mutation("rotate_root_signed_by_new_only", "reject")
def m_rotate_new(repo, rng):
    repo.root_version = 2
    repo.old_root_signers = []
    repo.signers["root"] = [repo.keys.fresh()]
    repo.thresholds["root"] = 1
    return None


@mutation("rotate_root_signed_by_old_only", "reject")
def m_rotate_old(repo, rng):
    repo.root_version = 2
    old = list(repo.signers["root"])
    repo.signers["root"] = [repo.keys.fresh()]
    repo.thresholds["root"] = 1
    return on("signers", "root", lambda _s: old)


@mutation("root_served_as_2_says_version_3", "reject")
def m_root_skip(repo, rng):
    repo.root_version = 2
    return on("signed", "root", set_field("version", 3))


@mutation("two_root_rotations", "accept")
def m_two_rotations(repo, rng):
    # 2.root.json (old and new keys) then 3.root.json (new and newer keys).
    first = list(repo.signers["root"])
    second = [repo.keys.fresh()]
    third = [repo.keys.fresh()]
    repo.root_version = 2
    repo.old_root_signers = first
    repo.signers["root"] = second
    repo.thresholds["root"] = 1
    root2 = repo.root_signed()
    repo.files["metadata/2.root.json"] = json.dumps(sign(root2, first + second)).encode()
    repo.root_version = 3
    repo.old_root_signers = second
    repo.signers["root"] = third
    return None


@mutation("rotate_timestamp_key_and_reset_its_version", "accept")
def m_rotate_ts(repo, rng):
    # TUF 5.3.11: after a timestamp key rotation the client drops its trusted timestamp and
    # snapshot, so a new timestamp may start again at version 1 (fast-forward recovery).
    repo.root_version = 2
    repo.signers["timestamp"] = [repo.keys.fresh()]
    repo.versions["timestamp"] = 1
    return None


@mutation("rotate_snapshot_key_and_reset_its_version", "accept")
def m_rotate_snap(repo, rng):
    repo.root_version = 2
    repo.signers["snapshot"] = [repo.keys.fresh()]
    repo.versions["snapshot"] = 1
    return None


@mutation("target_outside_the_delegated_paths", "reject")
def m_outside(repo, rng):
    repo.new_target = ("team", "elsewhere/new.txt")
    return None


@mutation("terminating_delegation_hides_a_later_one", "reject")
def m_terminating(repo, rng):
    repo.delegations["team"]["terminating"] = True
    repo.delegate("second", {"paths": ["team/*"]})
    repo.new_target = ("second", "team/new.txt")
    return None


@mutation("non_terminating_delegation_passes_on", "accept")
def m_nonterminating(repo, rng):
    repo.delegations["team"]["terminating"] = False
    repo.delegate("second", {"paths": ["team/*"]})
    repo.new_target = ("second", "team/new.txt")
    return None


@mutation("path_hash_prefix_covers", "accept")
def m_prefix_ok(repo, rng):
    digest = hashlib.sha256(b"hashed/new.txt").hexdigest()
    repo.delegate("hashed", {"path_hash_prefixes": [digest[:2]]})
    repo.new_target = ("hashed", "hashed/new.txt")
    return None


@mutation("path_hash_prefix_misses", "reject")
def m_prefix_miss(repo, rng):
    digest = hashlib.sha256(b"hashed/new.txt").hexdigest()
    other = "0" if digest[0] != "0" else "1"
    repo.delegate("hashed", {"path_hash_prefixes": [other + digest[1]]})
    repo.new_target = ("hashed", "hashed/new.txt")
    return None


@mutation("delegation_with_paths_and_prefixes", "reject")
def m_both(repo, rng):
    repo.delegate("hashed", {"paths": ["hashed/*"], "path_hash_prefixes": ["00"]})
    repo.new_target = ("hashed", "hashed/new.txt")
    return None


@mutation("glob_star_does_not_cross_a_slash", "reject")
def m_glob(repo, rng):
    repo.delegate("globbed", {"paths": ["deep/*.txt"]})
    repo.new_target = ("globbed", "deep/er/new.txt")
    return None


for _name in ("../evil", "a b", "ünïcode", "x/y", "%41", "targets-2"):
    def _named(name):
        def prepare(repo, rng):
            repo.delegate(name, {"paths": ["named/*"]})
            repo.new_target = (name, "named/new.txt")
            return None
        return prepare
    MUTATIONS[f"role_named_{quote(_name, '')}"] = (_named(_name), "accept")


@mutation("role_named_empty", "reject")
def m_role_empty(repo, rng):
    repo.delegate("", {"paths": ["named/*"]})
    repo.new_target = ("", "named/new.txt")
    return None


def meta_mutation(role, field_fn):
    def prepare(repo, rng):
        repo.meta_hashes = True
        return on("signed", role, field_fn)
    return prepare


def _bad_hash(entry_key):
    def fn(s):
        s["meta"][entry_key]["hashes"]["sha256"] = "0" * 64
        return s
    return fn


def _length(entry_key, delta):
    def fn(s):
        s["meta"][entry_key]["length"] += delta
        return s
    return fn


MUTATIONS["snapshot_hash_wrong_in_timestamp"] = (meta_mutation("timestamp", _bad_hash("snapshot.json")), "reject")
MUTATIONS["snapshot_length_short_in_timestamp"] = (meta_mutation("timestamp", _length("snapshot.json", -10)), "reject")
MUTATIONS["snapshot_length_long_in_timestamp"] = (meta_mutation("timestamp", _length("snapshot.json", 100)), "accept")
MUTATIONS["targets_hash_wrong_in_snapshot"] = (meta_mutation("snapshot", _bad_hash("targets.json")), "reject")
MUTATIONS["targets_length_short_in_snapshot"] = (meta_mutation("snapshot", _length("targets.json", -1)), "reject")


@mutation("target_bytes_tampered", "reject")
def m_target_tampered(repo, rng):
    repo.tamper_target = True
    return None


@mutation("target_length_wrong", "reject")
def m_target_length(repo, rng):
    repo.target_length_delta = 1
    return None


@mutation("target_hashed_sha512_only", "accept")
def m_sha512(repo, rng):
    repo.target_hashes = ("sha512",)
    return None


@mutation("target_hashed_sha256_and_sha512", "accept")
def m_two_hashes(repo, rng):
    repo.target_hashes = ("sha256", "sha512")
    return None


@mutation("wrong_type_in_snapshot", "reject")
def m_type(repo, rng):
    return on("signed", "snapshot", set_field("_type", "timestamp"))


@mutation("spec_version_2", "reject")
def m_spec2(repo, rng):
    return on("signed", "targets", set_field("spec_version", "2.0.0"))


@mutation("spec_version_two_parts", "accept")
def m_spec_short(repo, rng):
    return on("signed", "targets", set_field("spec_version", "1.0"))


@mutation("unknown_field_in_signed", "accept")
def m_unknown_field(repo, rng):
    return on("signed", "snapshot", set_field("x-vendor", {"note": "ignored"}))


@mutation("unknown_field_holding_serde_json_s_raw_value_key", "accept")
def m_raw_value_key(repo, rng):
    # serde_json's own Value reader takes this key for its private raw-value marker; the
    # JSON is an ordinary object (the cjson fuzz target found it).
    odd = {"$serde_json::private::RawValue": "{\"a\": 1}", "note": "kept as written"}
    return on("signed", "snapshot", set_field("x-vendor", odd))


@mutation("expires_missing", "reject")
def m_no_expires(repo, rng):
    return on("signed", "targets", lambda s: (s.pop("expires"), s)[1])


@mutation("version_is_a_string", "reject")
def m_version_string(repo, rng):
    return on("signed", "snapshot", set_field("version", "3"))


@mutation("expires_with_fraction_of_seconds", "reject")
def m_expires_fraction(repo, rng):
    return on("signed", "targets", set_field("expires", FUTURE.replace("Z", ".5Z")))


@mutation("duplicate_json_key", "reject")
def m_duplicate_key(repo, rng):
    # The served snapshot has `"version"` twice; the signature covers the last one.
    def fn(data):
        text = data.decode()
        envelope = json.loads(text)
        v = envelope["signed"]["version"]
        return text.replace(f'"version": {v}', f'"version": 1, "version": {v}', 1).encode()
    return on("bytes", "snapshot", fn)


# ----- running the clients -----------------------------------------------------------------


def trusted_versions(d: Path) -> dict:
    """The versions a client trusts: its stored root, and each stored role that the stored
    root (or a trusted delegator) verifies. A client may keep a file it no longer trusts
    (python-tuf keeps a timestamp that a rotated key no longer verifies, where TUF 5.3.11
    deletes it); the verdict of the next refresh is what counts."""
    try:
        root = Metadata.from_file(str(d / "root.json"))
    except Exception:  # noqa: BLE001 - a client wrote something unreadable: report it
        return {"root": "unreadable"}
    out = {"root": root.signed.version}
    files = {unquote(f.stem): f for f in d.glob("*.json") if f.name != "root.json"}
    delegators = {}
    for role in ("timestamp", "snapshot", "targets"):
        if role not in files:
            continue
        try:
            md = Metadata.from_bytes(files.pop(role).read_bytes())
            root.verify_delegate(role, md)
        except Exception:  # noqa: BLE001 - not verified: not trusted
            continue
        out[role] = md.signed.version
        if role == "targets":
            delegators["targets"] = md
    progress = True
    while files and progress:
        progress = False
        for name, path in list(files.items()):
            try:
                md = Metadata.from_bytes(path.read_bytes())
            except Exception:  # noqa: BLE001
                files.pop(name)
                continue
            for parent in list(delegators.values()):
                try:
                    parent.verify_delegate(name, md)
                except Exception:  # noqa: BLE001 - not this delegator
                    continue
                out[name] = md.signed.version
                delegators[name] = md
                files.pop(name)
                progress = True
                break
    return out


def run_python(meta_dir: Path, target_dir: Path, url: str, target: str) -> tuple[str, str]:
    try:
        updater = Updater(str(meta_dir), url + "metadata/", str(target_dir), url + "targets/", bootstrap=None)
        updater.refresh()
        info = updater.get_targetinfo(target)
        if info is None:
            return "reject", "target not found"
        updater.download_target(info)
        return "accept", ""
    except Exception as e:  # noqa: BLE001 - every error is a rejection, by its class
        return "reject", f"{type(e).__name__}: {e}"[:300]


def run_pullguard(bin_: str, meta_dir: Path, target_dir: Path, url: str, target: str) -> tuple[str, str]:
    out = subprocess.run(
        [bin_, "tuf-client", "--metadata-url", url + "metadata/", "--metadata-dir", str(meta_dir),
         "--target-name", target, "--target-dir", str(target_dir), "--target-base-url",
         url + "targets/", "--timeout", "10", "download"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
    )
    if out.returncode == 0:
        return "accept", ""
    return "reject", out.stderr.strip().splitlines()[-1][:300] if out.stderr.strip() else f"exit {out.returncode}"


def run_case(index: int, name: str, work: Path, port: int, keys: Keys, rng: random.Random, bin_: str) -> dict:
    keys.reset()
    case = work / f"case{index}"
    repo = Repo(case, keys, rng)
    # Stage 1: a valid repository with a target in targets and one in a delegated role.
    repo.delegate("team", {"paths": ["team/*"], "terminating": rng.random() < 0.5})
    repo.add_target("targets", "first.txt", b"first target")
    repo.add_target("team", "team/first.txt", b"team's first target")
    identity = lambda _s, _r, v: v  # noqa: E731
    repo.publish(identity, include_root=True)
    repo.write()
    url = f"http://127.0.0.1:{port}/case{index}/"
    clients = {}
    for client in ("python-tuf", "pullguard"):
        meta_dir = case / client / "metadata"
        meta_dir.mkdir(parents=True)
        shutil.copy(case / "metadata/1.root.json", meta_dir / "root.json")
        clients[client] = meta_dir
    first_target = rng.choice(["first.txt", "team/first.txt"])
    for c in clients:
        for t in ("t1", "t2"):
            (case / c / t).mkdir()
    stage1 = {
        "python-tuf": run_python(clients["python-tuf"], case / "python-tuf/t1", url, first_target),
        "pullguard": run_pullguard(bin_, clients["pullguard"], case / "pullguard/t1", url, first_target),
    }

    # Stage 2: the next state, with one mutation.
    prepare, expected = MUTATIONS[name]
    repo.files = {}
    repo.old_root_signers = []
    repo.new_target = ("team", "team/new.txt") if rng.random() < 0.5 else ("targets", "new.txt")
    for role in list(repo.versions):
        repo.versions[role] += 1
    hook = prepare(repo, rng) or identity
    role, path = repo.new_target
    data = b"the new target " + str(index).encode()
    repo.add_target(role, path, data, getattr(repo, "target_hashes", ("sha256",)))
    if getattr(repo, "target_length_delta", 0):
        repo.targets[role][path]["length"] += repo.target_length_delta
    if getattr(repo, "tamper_target", False):
        for served, content in list(repo.files.items()):
            if content == data:
                repo.files[served] = b"not " + data
    repo.publish(hook, include_root=repo.root_version > 1)
    repo.write()
    stage2 = {}
    stage2["python-tuf"] = run_python(clients["python-tuf"], case / "python-tuf/t2", url, path)
    stage2["pullguard"] = run_pullguard(bin_, clients["pullguard"], case / "pullguard/t2", url, path)
    versions = {c: trusted_versions(d) for c, d in clients.items()}
    result = {
        "case": index, "mutation": name, "expected": expected, "target": path,
        "stage1": {c: v[0] for c, v in stage1.items()},
        "stage2": {c: v[0] for c, v in stage2.items()},
        "why": {c: v[1] for c, v in stage2.items()},
        "stage1_why": {c: v[1] for c, v in stage1.items()},
        "versions": versions,
    }
    agree = (
        stage1["python-tuf"][0] == stage1["pullguard"][0]
        and stage2["python-tuf"][0] == stage2["pullguard"][0]
        and versions["python-tuf"] == versions["pullguard"]
    )
    result["agree"] = agree
    kept = KEPT.get(name)
    result["kept"] = bool(not agree and kept and stage2["pullguard"][0] == kept[0]
                          and stage1["python-tuf"][0] == stage1["pullguard"][0] == "accept")
    shutil.rmtree(case)
    return result


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D401 - silence the per-request log
        pass


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pullguard", required=True)
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", help="run only this mutation")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    keys = Keys(rng)
    names = sorted(MUTATIONS)
    if args.only:
        names = [args.only]
    # Every mutation at least once, then at random.
    plan = [names[i % len(names)] for i in range(min(args.cases, len(names)))]
    plan += [rng.choice(names) for _ in range(args.cases - len(plan))]
    work = Path(tempfile.mkdtemp(prefix="pullguard-differential-"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(work)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    results = []
    try:
        for i, name in enumerate(plan):
            results.append(run_case(i, name, work, server.server_address[1], keys, rng, args.pullguard))
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False))

    by = defaultdict(Counter)
    for r in results:
        c = by[r["mutation"]]
        c["cases"] += 1
        c["agree" if r["agree"] else ("kept" if r["kept"] else "DISAGREE")] += 1
        c[f"python-tuf {r['stage2']['python-tuf']}"] += 1
        c[f"pullguard {r['stage2']['pullguard']}"] += 1
    print("| mutation | cases | both accept | both reject | disagree (kept) | disagree |")
    print("|---|---|---|---|---|---|")
    for name in sorted(by):
        rs = [r for r in results if r["mutation"] == name]
        both_a = sum(1 for r in rs if r["agree"] and r["stage2"]["pullguard"] == "accept")
        both_r = sum(1 for r in rs if r["agree"] and r["stage2"]["pullguard"] == "reject")
        kept = sum(1 for r in rs if r["kept"])
        bad = sum(1 for r in rs if not r["agree"] and not r["kept"])
        print(f"| {name} | {len(rs)} | {both_a} | {both_r} | {kept} | {bad} |")
    total = len(results)
    agree = sum(r["agree"] for r in results)
    kept = sum(r["kept"] for r in results)
    bad = [r for r in results if not r["agree"] and not r["kept"]]
    print(f"\n{total} cases (seed {args.seed}): {agree} agree, {kept} kept disagreements, {len(bad)} disagreements")
    for name, (decision, why) in KEPT.items():
        print(f"kept: {name}: pullguard {decision}s. {why}")
    for r in bad[:20]:
        print(f"DISAGREE case {r['case']} {r['mutation']}: stage1 {r['stage1']} stage2 {r['stage2']} "
              f"why {r['why']} versions {r['versions']}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
