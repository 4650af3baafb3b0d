"""Writes a TUF repository with N targets (python-tuf Metadata API), and runs python-tuf's
ngclient as a whole process, for the whole-process comparison in benches/compare/run.sh.

    python tuf_repo.py make DIR N       repository in DIR/metadata and DIR/targets
    python tuf_repo.py client URL STATE TARGET TARGETS_URL OUT
                                        refresh from URL with trusted state in STATE (which
                                        holds root.json), look TARGET up, download it from
                                        TARGETS_URL into OUT and verify it
"""

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path


def make(out: Path, n: int) -> None:
    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import (Metadata, MetaFile, Root, Snapshot, TargetFile, Targets,
                                  Timestamp)

    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=7)
    signers = {r: CryptoSigner.generate_ed25519() for r in ("root", "targets", "snapshot", "timestamp")}
    root = Root(expires=expires, consistent_snapshot=True)
    for role, signer in signers.items():
        root.add_key(signer.public_key, role)
    (out / "metadata").mkdir(parents=True)
    (out / "targets").mkdir()
    targets = Targets(expires=expires)
    for i in range(n):
        data = f"target {i}".encode()
        path = f"images/app-{i}.json"
        tf = TargetFile.from_data(path, data, ["sha256"])
        targets.targets[path] = tf
        if i == 0:
            # Consistent snapshots: the file is served under its hash.
            (out / "targets" / "images").mkdir()
            (out / "targets" / "images" / f"{tf.hashes['sha256']}.app-0.json").write_bytes(data)
    docs = {
        "root": Metadata(root),
        "targets": Metadata(targets),
        "snapshot": Metadata(Snapshot(expires=expires)),
        "timestamp": Metadata(Timestamp(expires=expires)),
    }
    docs["snapshot"].signed.meta["targets.json"] = MetaFile(version=1)
    for role in ("root", "targets", "snapshot"):
        docs[role].sign(signers[role])
        docs[role].to_file(str(out / "metadata" / f"1.{role}.json"))
    snap_bytes = (out / "metadata" / "1.snapshot.json").read_bytes()
    docs["timestamp"].signed.snapshot_meta = MetaFile(version=1, length=len(snap_bytes),
                                                      hashes={"sha256": __import__("hashlib").sha256(snap_bytes).hexdigest()})
    docs["timestamp"].sign(signers["timestamp"])
    docs["timestamp"].to_file(str(out / "metadata" / "timestamp.json"))


def client(url: str, state: str, target: str, targets_url: str, out: str) -> None:
    from tuf.ngclient import Updater

    updater = Updater(metadata_dir=state, metadata_base_url=url, target_dir=out,
                      target_base_url=targets_url, bootstrap=None)
    updater.refresh()
    info = updater.get_targetinfo(target)
    if info is None:
        sys.exit(f"{target} not found")
    updater.download_target(info)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        client(*sys.argv[2:7])
