"""Generates TUF repositories with python-tuf, for pullguard's interoperability tests.

Usage: ``python tufrepo.py DIR COMMAND [ARGS] [";" COMMAND [ARGS] ...]``

Needs python-tuf and cryptography (``pip install tuf cryptography``: ``tuf`` alone does
not bring cryptography, which key generation and signing use).

Every command reads the repository state from DIR, changes it and writes it back, so a
test can run one command per process or several separated by a lone ``;`` argument.

DIR holds:

* ``keys/<keyid>.pem``                 private keys (unencrypted PKCS#8; test use only)
* ``state.json``                       current version of each role, delegation parents,
                                       keys that must not sign, repository options
* ``history/<quoted role>/<v>.json``   every published version of every role
* ``metadata/``                        what the repository serves: ``N.root.json`` for each
                                       root, ``timestamp.json``, and ``V.<quoted role>.json``
                                       (consistent snapshots) or ``<quoted role>.json``
* ``targets/``                         target files: ``dir/<hash>.<name>`` for every listed
                                       hash (consistent snapshots) or the plain path

Role names are quoted with ``urllib.parse.quote(name, "")`` wherever they become file names,
as python-tuf's ngclient does, so ``../x`` is stored as ``..%2Fx.json``.

Commands:

* ``init [--keytype T] [--no-consistent-snapshot] [--meta-hashes] [--expires-days N]``
* ``add-target PATH --data STR [--role R] [--hashes sha256,sha512]``
* ``delegate PARENT CHILD [--paths P,...] [--terminating] [--keytype T]``
* ``publish ROLE... [--expires ISO | --expired] [--version N] [--pin ROLE=V]...
  [--no-cascade]`` — bump and re-sign; a targets role cascades to snapshot and timestamp,
  snapshot cascades to timestamp. ``--pin`` overrides a version that snapshot (for a
  targets role) or timestamp (for snapshot) lists.
* ``rotate ROLE [--keytype T] [--sign both|old|new]`` — replace a top-level role's key in a
  new root, signed by the old and the new root keys (or, as an attack, only one of them).
* ``add-key ROLE [--threshold N] [--keytype T] [--no-sign]`` — one more key for a top-level
  role in a new root; with ``--no-sign`` the key is listed but never signs.
* ``serve-old ROLE VERSION`` — serve an older published version's bytes where the current
  version is served (for root: as the next ``N.root.json``).
* ``tamper unsigned ROLE`` / ``tamper foreign-key ROLE`` — publish ROLE with no signature /
  signed by a key nobody delegated.
* ``tamper keytype ROLE --keytype T [--scheme S]`` — publish a new version of ROLE, then a
  root that declares a different type for ROLE's (first) key; the key bytes stay as they
  are. python-tuf cannot load that root, so no command can follow this one.
* ``tamper pad ROLE --bytes N`` — publish ROLE with an extra N-byte field in ``signed``.
* ``tamper target PATH --data STR`` — replace a served target file's bytes only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import (
    TOP_LEVEL_ROLE_NAMES,
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

KEY_GENERATORS = {
    "ed25519": CryptoSigner.generate_ed25519,
    "ecdsa": CryptoSigner.generate_ecdsa,
    "rsa": CryptoSigner.generate_rsa,
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


class Repo:
    """A repository on disk. Public methods are the CLI commands."""

    def __init__(self, root: Path):
        self.dir = root
        state_file = root / "state.json"
        self.state = json.loads(state_file.read_text()) if state_file.exists() else {}

    # ----- storage -----------------------------------------------------------------------

    def save_state(self) -> None:
        (self.dir / "state.json").write_text(json.dumps(self.state, indent=1, sort_keys=True))

    def version(self, role: str) -> int:
        return self.state["versions"][role]

    def history_file(self, role: str, version: int) -> Path:
        return self.dir / "history" / quote(role, "") / f"{version}.json"

    def load(self, role: str) -> Metadata:
        return Metadata.from_file(str(self.history_file(role, self.version(role))))

    def served_file(self, role: str, version: int) -> Path:
        """Where the repository serves `version` of `role`."""
        name = quote(role, "")
        if role == "root":
            return self.dir / "metadata" / f"{version}.root.json"
        if role == "timestamp" or not self.state["consistent_snapshot"]:
            return self.dir / "metadata" / f"{name}.json"
        return self.dir / "metadata" / f"{version}.{name}.json"

    def new_signer(self, keytype: str | None = None) -> CryptoSigner:
        signer = KEY_GENERATORS[keytype or self.state["keytype"]]()
        keys = self.dir / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        (keys / f"{signer.public_key.keyid}.pem").write_bytes(signer.private_bytes)
        return signer

    def signer(self, keyid: str) -> CryptoSigner | None:
        pem = self.dir / "keys" / f"{keyid}.pem"
        if not pem.exists():
            return None
        return CryptoSigner(load_pem_private_key(pem.read_bytes(), None))

    # ----- who signs what ----------------------------------------------------------------

    def delegator(self, role: str) -> Metadata:
        parent = "root" if role in TOP_LEVEL_ROLE_NAMES else self.state["parents"][role]
        return self.load(parent)

    def authorized_keyids(self, role: str, delegator: Metadata | None = None) -> list[str]:
        signed = (delegator or self.delegator(role)).signed
        return list(signed.get_delegated_role(role).keyids)

    def signers_for(self, role: str, md: Metadata) -> list[Signer]:
        keyids = self.authorized_keyids(role, md if role == "root" else None)
        if role == "root" and "root" in self.state["versions"]:
            # A new root is signed by the trusted root's keys too (TUF 5.3.4).
            previous = self.authorized_keyids("root", self.load("root"))
            keyids = previous + [k for k in keyids if k not in previous]
        signers = []
        for keyid in keyids:
            if keyid in self.state["withheld"]:
                continue
            signer = self.signer(keyid)
            if signer is not None:
                signers.append(signer)
        return signers

    # ----- publishing --------------------------------------------------------------------

    def write(self, role: str, md: Metadata, signers: list[Signer]) -> None:
        """Signs and publishes `md` as the current version of `role`."""
        md.signatures.clear()
        for signer in signers:
            md.sign(signer, append=True)
        data = md.to_bytes(JSONSerializer(compact=False))
        version = md.signed.version
        for path in (self.history_file(role, version), self.served_file(role, version)):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        self.state["versions"][role] = version
        self.save_state()

    def meta_file(self, role: str, version: int) -> MetaFile:
        if not self.state["meta_hashes"]:
            return MetaFile(version=version)
        data = self.history_file(role, version).read_bytes()
        return MetaFile.from_data(version, data, ["sha256"])

    def bump(self, md: Metadata, version: int | None, expires: datetime | None) -> None:
        md.signed.version = version if version is not None else md.signed.version + 1
        md.signed.expires = expires or utcnow() + timedelta(days=self.state["expires_days"])

    def publish_roles(
        self,
        roles: list[str],
        *,
        version: int | None = None,
        expires: datetime | None = None,
        pins: dict[str, int] | None = None,
        cascade: bool = True,
        change=None,
        signers: list[Signer] | None = None,
    ) -> None:
        """Bumps and re-signs `roles` in order, then (with `cascade`) snapshot and timestamp.

        `change(role, md)` edits a role before it is signed; `signers` replaces the role's
        own keys for the roles named (not for the cascade).
        """
        pins = pins or {}
        pending = list(roles)
        if cascade:
            if any(r not in ("root", "timestamp", "snapshot") for r in roles):
                pending.append("snapshot")
            if "snapshot" in pending:
                pending.append("timestamp")
        done = set()
        for role in pending:
            if role in done:
                continue
            done.add(role)
            md = self.load(role)
            named = role in roles
            self.bump(md, version if named else None, expires if named else None)
            if role == "snapshot":
                for name, ver in self.state["versions"].items():
                    if name not in ("root", "timestamp", "snapshot"):
                        md.signed.meta[f"{name}.json"] = self.meta_file(name, ver)
                for name, ver in pins.items():
                    if name not in ("root", "timestamp", "snapshot"):
                        md.signed.meta[f"{name}.json"] = MetaFile(version=ver)
            if role == "timestamp":
                snap = self.state["versions"]["snapshot"]
                md.signed.snapshot_meta = self.meta_file("snapshot", snap)
                if "snapshot" in pins:
                    md.signed.snapshot_meta = MetaFile(version=pins["snapshot"])
            if change and named:
                change(role, md)
            chosen = signers if (signers is not None and named) else self.signers_for(role, md)
            self.write(role, md, chosen)

    # ----- commands ----------------------------------------------------------------------

    def init(self, keytype: str, consistent: bool, meta_hashes: bool, expires_days: int):
        self.state = {
            "keytype": keytype,
            "consistent_snapshot": consistent,
            "meta_hashes": meta_hashes,
            "expires_days": expires_days,
            "versions": {},
            "parents": {},
            "withheld": [],
        }
        expires = utcnow() + timedelta(days=expires_days)
        root = Root(expires=expires, consistent_snapshot=consistent)
        for role in ("root", "timestamp", "snapshot", "targets"):
            root.add_key(self.new_signer().public_key, role)
        self.write("root", Metadata(root), self.signers_for("root", Metadata(root)))
        for role, signed in (
            ("targets", Targets(expires=expires)),
            ("snapshot", Snapshot(expires=expires)),
            ("timestamp", Timestamp(expires=expires)),
        ):
            md = Metadata(signed)
            if role == "snapshot":
                md.signed.meta["targets.json"] = self.meta_file("targets", 1)
            if role == "timestamp":
                md.signed.snapshot_meta = self.meta_file("snapshot", 1)
            self.write(role, md, self.signers_for(role, md))

    def add_target(self, path: str, data: bytes, role: str, hashes: list[str]):
        target = TargetFile.from_data(path, data, hashes)
        dirname, sep, base = path.rpartition("/")
        if self.state["consistent_snapshot"]:
            files = [f"{dirname}{sep}{h}.{base}" for h in target.hashes.values()]
        else:
            files = [path]
        for name in files:
            out = self.dir / "targets" / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        self.publish_roles([role], change=lambda _r, md: md.signed.targets.update({path: target}))

    def delegate(self, parent: str, child: str, paths: list[str], terminating: bool, keytype):
        signer = self.new_signer(keytype)

        def add_delegation(_role, md):
            if md.signed.delegations is None:
                md.signed.delegations = Delegations(keys={}, roles={})
            md.signed.delegations.roles[child] = DelegatedRole(child, [], 1, terminating, paths)
            md.signed.add_key(signer.public_key, child)

        expires = utcnow() + timedelta(days=self.state["expires_days"])
        self.state["parents"][child] = parent
        self.write(child, Metadata(Targets(expires=expires)), [signer])
        self.publish_roles([parent], change=add_delegation)

    def publish(self, roles, version, expires, pins, cascade):
        if version is not None and len(roles) != 1:
            raise SystemExit("--version needs exactly one role")
        self.publish_roles(roles, version=version, expires=expires, pins=pins, cascade=cascade)

    def rotate(self, role: str, keytype: str | None, sign: str):
        signer = self.new_signer(keytype)

        def replace_key(_r, md):
            for keyid in list(md.signed.roles[role].keyids):
                md.signed.revoke_key(keyid, role)
            md.signed.add_key(signer.public_key, role)

        signers = None
        if sign == "new":
            signers = [signer] if role == "root" else None
        elif sign == "old":
            old = self.authorized_keyids("root", self.load("root"))
            signers = [self.signer(k) for k in old]
        self.publish_roles(["root"], change=replace_key, signers=signers)

    def add_key(self, role: str, threshold: int | None, keytype: str | None, sign: bool):
        signer = self.new_signer(keytype)
        if not sign:
            self.state["withheld"].append(signer.public_key.keyid)

        def add(_r, md):
            md.signed.add_key(signer.public_key, role)
            if threshold is not None:
                md.signed.roles[role].threshold = threshold

        self.publish_roles(["root"], change=add)

    def serve_old(self, role: str, version: int):
        data = self.history_file(role, version).read_bytes()
        current = self.version(role)
        target = self.served_file(role, current + 1 if role == "root" else current)
        target.write_bytes(data)

    def tamper(self, args):
        mode, role = args.mode, args.role
        if mode == "unsigned":
            self.publish_roles([role], signers=[])
        elif mode == "foreign-key":
            self.publish_roles([role], signers=[KEY_GENERATORS[self.state["keytype"]]()])
        elif mode == "keytype":
            # python-tuf cannot read the tampered root back, so this comes last: first a
            # new version of ROLE signed by its real key, then the root that mislabels it.
            self.publish_roles([role])

            def retype(_r, md):
                key = md.signed.keys[md.signed.roles[role].keyids[0]]
                key.keytype = args.keytype
                if args.scheme:
                    key.scheme = args.scheme

            self.publish_roles(["root"], change=retype)
        elif mode == "pad":

            def pad(_r, md):
                md.signed.unrecognized_fields["x-pad"] = "p" * args.bytes

            self.publish_roles([role], change=pad)
        elif mode == "target":
            target = self.load_target(role)
            dirname, sep, base = role.rpartition("/")
            if self.state["consistent_snapshot"]:
                files = [f"{dirname}{sep}{h}.{base}" for h in target.hashes.values()]
            else:
                files = [role]
            for name in files:
                (self.dir / "targets" / name).write_bytes(args.data.encode())

    def load_target(self, path: str) -> TargetFile:
        for role in self.state["versions"]:
            if role in ("root", "timestamp", "snapshot"):
                continue
            found = self.load(role).signed.targets.get(path)
            if found is not None:
                return found
        raise SystemExit(f"no role lists target {path}")


def parse_expiry(args) -> datetime | None:
    if getattr(args, "expired", False):
        return utcnow() - timedelta(days=1)
    if getattr(args, "expires", None):
        return datetime.fromisoformat(args.expires.replace("Z", "+00:00"))
    return None


def parse_pins(pins: list[str]) -> dict[str, int]:
    out = {}
    for pin in pins:
        role, _, version = pin.rpartition("=")
        out[role] = int(version)
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tufrepo.py")
    sub = p.add_subparsers(dest="command", required=True)
    keytypes = sorted(KEY_GENERATORS)

    c = sub.add_parser("init")
    c.add_argument("--keytype", choices=keytypes, default="ed25519")
    c.add_argument("--no-consistent-snapshot", action="store_true")
    c.add_argument("--meta-hashes", action="store_true")
    c.add_argument("--expires-days", type=int, default=30)

    c = sub.add_parser("add-target")
    c.add_argument("path")
    c.add_argument("--data", required=True)
    c.add_argument("--role", default="targets")
    c.add_argument("--hashes", default="sha256")

    c = sub.add_parser("delegate")
    c.add_argument("parent")
    c.add_argument("child")
    c.add_argument("--paths", default="*")
    c.add_argument("--terminating", action="store_true")
    c.add_argument("--keytype", choices=keytypes)

    c = sub.add_parser("publish")
    c.add_argument("roles", nargs="+")
    group = c.add_mutually_exclusive_group()
    group.add_argument("--expires")
    group.add_argument("--expired", action="store_true")
    c.add_argument("--version", type=int)
    c.add_argument("--pin", action="append", default=[])
    c.add_argument("--no-cascade", action="store_true")

    c = sub.add_parser("rotate")
    c.add_argument("role", choices=sorted(TOP_LEVEL_ROLE_NAMES))
    c.add_argument("--keytype", choices=keytypes)
    c.add_argument("--sign", choices=["both", "old", "new"], default="both")

    c = sub.add_parser("add-key")
    c.add_argument("role", choices=sorted(TOP_LEVEL_ROLE_NAMES))
    c.add_argument("--threshold", type=int)
    c.add_argument("--keytype", choices=keytypes)
    c.add_argument("--no-sign", action="store_true")

    c = sub.add_parser("serve-old")
    c.add_argument("role")
    c.add_argument("version", type=int)

    c = sub.add_parser("tamper")
    c.add_argument("mode", choices=["unsigned", "foreign-key", "keytype", "pad", "target"])
    c.add_argument("role", help="a role, or for `target` a target path")
    c.add_argument("--keytype")
    c.add_argument("--scheme")
    c.add_argument("--bytes", type=int, default=20000)
    c.add_argument("--data")
    return p


def run(repo_dir: Path, argv: list[str]) -> None:
    args = parser().parse_args(argv)
    repo = Repo(repo_dir)
    if args.command == "init":
        repo_dir.mkdir(parents=True, exist_ok=True)
        repo.init(
            args.keytype, not args.no_consistent_snapshot, args.meta_hashes, args.expires_days
        )
    elif args.command == "add-target":
        hashes = args.hashes.split(",")
        repo.add_target(args.path, args.data.encode(), args.role, hashes)
    elif args.command == "delegate":
        paths = args.paths.split(",")
        repo.delegate(args.parent, args.child, paths, args.terminating, args.keytype)
    elif args.command == "publish":
        repo.publish(
            args.roles, args.version, parse_expiry(args), parse_pins(args.pin),
            not args.no_cascade,
        )
    elif args.command == "rotate":
        repo.rotate(args.role, args.keytype, args.sign)
    elif args.command == "add-key":
        repo.add_key(args.role, args.threshold, args.keytype, not args.no_sign)
    elif args.command == "serve-old":
        repo.serve_old(args.role, args.version)
    elif args.command == "tamper":
        repo.tamper(args)


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    repo_dir = Path(sys.argv[1])
    command: list[str] = []
    for arg in sys.argv[2:] + [";"]:
        if arg == ";":
            if command:
                run(repo_dir, command)
            command = []
        else:
            command.append(arg)


if __name__ == "__main__":
    os.umask(0o077)
    main()
